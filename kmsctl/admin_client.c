/*
 * kmsctl/admin_client.c: the client side of kmsd's admin socket.
 *
 * Loads kmsd's own configuration to find the socket, sends one TTLV
 * ADMIN_REQUEST and reads one ADMIN_RESPONSE (bounded by
 * SRV_ADMIN_MAX_MESSAGE), and prints the response records as text or JSON.
 * It deliberately holds no command logic: the cmd_*.c files build the
 * requests and choose how to print.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

int kmsctl_load_conf(conf_t **out)
{
    char err[512];
    int rc = conf_load(kmsctl_g.config_path, out, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "kmsctl: %s\n", err[0] ? err : kms_strerror(rc));
        return KMSCTL_EXIT_UNREACHABLE;
    }
    return 0;
}

int kmsctl_read_file(const char *path, size_t max, char **out, size_t *len_out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return KMS_ERR_IO;
    kms_buf_t b;
    kms_buf_init(&b, max);
    char tmp[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0 && rc == 0)
        rc = kms_buf_append(&b, tmp, n);
    if (!rc && ferror(f))
        rc = KMS_ERR_IO;
    if (!rc)
        rc = kms_buf_append_byte(&b, 0);
    fclose(f);
    kms_wipe(tmp, sizeof(tmp)); /* the file may be a password file */
    if (rc) {
        kms_buf_dispose_wipe(&b);
        return rc;
    }
    size_t len = 0;
    *out = (char *)kms_buf_take(&b, &len);
    if (len_out)
        *len_out = len - 1;
    return 0;
}

ttlv_item_t *kmsctl_admin_request(kms_arena_t *a, const char *command)
{
    ttlv_item_t *r = ttlv_new_struct(a, NULL, SRV_TAG_ADMIN_REQUEST);
    if (!r || !ttlv_new_int(a, r, SRV_TAG_ADMIN_PROTOCOL_VERSION, SRV_ADMIN_PROTOCOL_VERSION) ||
        !ttlv_new_textz(a, r, SRV_TAG_ADMIN_COMMAND, command))
        return NULL;
    return r;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KMS_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
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
    return write_all(fd, p, n);
}

int kmsctl_admin_call(kms_arena_t *a, ttlv_item_t *req, ttlv_item_t **resp_out)
{
    return kmsctl_admin_call_fd(a, req, -1, resp_out);
}

int kmsctl_admin_call_fd(kms_arena_t *a, ttlv_item_t *req, int pass_fd, ttlv_item_t **resp_out)
{
    conf_t *c = NULL;
    int ec = kmsctl_load_conf(&c);
    if (ec)
        return ec;
    int fd = -1;
    uint8_t *body = NULL;
    kms_buf_t out;
    kms_buf_init(&out, SRV_ADMIN_MAX_MESSAGE);
    ec = KMSCTL_EXIT_UNREACHABLE;

    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(c->admin.socket) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "kmsctl: admin socket path too long: %s\n", c->admin.socket);
        goto out;
    }
    strcpy(sun.sun_path, c->admin.socket);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        fprintf(stderr, "kmsctl: cannot reach kmsd at %s: %s (is kmsd running? see admin.socket in %s)\n",
                c->admin.socket, strerror(errno), kmsctl_g.config_path);
        goto out;
    }
    if (ttlv_encode(req, &out) != 0 || send_request(fd, out.data, out.len, pass_fd) != 0) {
        fprintf(stderr, "kmsctl: cannot send the request to %s\n", c->admin.socket);
        goto out;
    }
    kms_buf_dispose_wipe(&out); /* may have held a password */
    uint8_t hdr[8];
    if (read_all(fd, hdr, 8) != 0) {
        fprintf(stderr, "kmsctl: kmsd closed the admin connection without an answer\n");
        goto out;
    }
    uint32_t tag = ((uint32_t)hdr[0] << 16) | ((uint32_t)hdr[1] << 8) | hdr[2];
    uint32_t blen = kms_be32(hdr + 4);
    if (tag != SRV_TAG_ADMIN_RESPONSE || hdr[3] != TTLV_STRUCTURE ||
        blen > SRV_ADMIN_MAX_MESSAGE - 8) {
        fprintf(stderr, "kmsctl: malformed answer on the admin socket\n");
        goto out;
    }
    body = malloc((size_t)blen + 8);
    if (!body)
        goto out;
    memcpy(body, hdr, 8);
    if (read_all(fd, body + 8, blen) != 0) {
        fprintf(stderr, "kmsctl: truncated answer on the admin socket\n");
        goto out;
    }
    ttlv_item_t *resp = NULL;
    kms_error_t terr;
    if (ttlv_decode(body, (size_t)blen + 8, NULL, a, &resp, &terr) != 0) {
        fprintf(stderr, "kmsctl: malformed answer on the admin socket: %s\n", terr.msg);
        goto out;
    }
    ttlv_item_t *ver = ttlv_find(resp, SRV_TAG_ADMIN_PROTOCOL_VERSION);
    ttlv_item_t *st = ttlv_find(resp, SRV_TAG_ADMIN_STATUS);
    ttlv_item_t *msg = ttlv_find(resp, SRV_TAG_ADMIN_MESSAGE);
    if (!ver || ver->type != TTLV_INTEGER || !st || st->type != TTLV_INTEGER) {
        fprintf(stderr, "kmsctl: answer without version or status\n");
        goto out;
    }
    if (st->v.i32 != 0) {
        const char *m = msg && msg->type == TTLV_TEXT_STRING ? ttlv_text(msg) : "";
        fprintf(stderr, "kmsctl: kmsd refused: %s%s%s\n", kms_strerror(st->v.i32), *m ? ": " : "", m);
        ec = st->v.i32 == KMS_ERR_NOTSUP ? KMSCTL_EXIT_UNREACHABLE : KMSCTL_EXIT_FAIL;
        if (st->v.i32 == KMS_ERR_INVAL)
            ec = KMSCTL_EXIT_USAGE;
        goto out;
    }
    *resp_out = resp;
    ec = 0;
out:
    if (fd >= 0)
        close(fd);
    free(body);
    kms_buf_dispose_wipe(&out);
    conf_free(c);
    return ec;
}

/* ------------------------------------------------------------- printing */
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
    } else if (v->tag == SRV_TAG_ADMIN_FIELD_TEXT && v->type == TTLV_TEXT_STRING) {
        if (json)
            json_string(f, ttlv_text(v), v->v.bytes.len);
        else
            fwrite(v->v.bytes.ptr, 1, v->v.bytes.len, f);
    } else if (v->tag == SRV_TAG_ADMIN_FIELD_LONG && v->type == TTLV_LONG_INTEGER) {
        fprintf(f, "%" PRId64, v->v.i64);
    } else if (v->tag == SRV_TAG_ADMIN_FIELD_BOOL && v->type == TTLV_BOOLEAN) {
        fputs(v->v.b ? "true" : "false", f);
    } else {
        fputs(json ? "null" : "?", f);
    }
}

static const ttlv_item_t *field_value(const ttlv_item_t *field)
{
    for (const ttlv_item_t *c = field->first; c; c = c->next)
        if (c->tag != SRV_TAG_ADMIN_FIELD_NAME)
            return c;
    return NULL;
}

static const char *field_name(const ttlv_item_t *field)
{
    const ttlv_item_t *n = ttlv_find(field, SRV_TAG_ADMIN_FIELD_NAME);
    return n && n->type == TTLV_TEXT_STRING ? ttlv_text(n) : "?";
}

static void print_record_json(FILE *f, const ttlv_item_t *rec)
{
    fputc('{', f);
    bool first = true;
    for (const ttlv_item_t *fl = ttlv_find(rec, SRV_TAG_ADMIN_FIELD); fl;
         fl = ttlv_find_next(fl, SRV_TAG_ADMIN_FIELD)) {
        const char *name = field_name(fl);
        if (!first)
            fputc(',', f);
        first = false;
        json_string(f, name, strlen(name));
        fputc(':', f);
        print_value(f, field_value(fl), true);
    }
    fputc('}', f);
}

void kmsctl_print_records(FILE *f, const ttlv_item_t *resp, bool single)
{
    const ttlv_item_t *first = ttlv_find(resp, SRV_TAG_ADMIN_RECORD);
    if (kmsctl_g.json) {
        if (single) {
            if (first)
                print_record_json(f, first);
            else
                fputs("{}", f);
        } else {
            fputc('[', f);
            for (const ttlv_item_t *r = first; r; r = ttlv_find_next(r, SRV_TAG_ADMIN_RECORD)) {
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
        for (const ttlv_item_t *fl = ttlv_find(first, SRV_TAG_ADMIN_FIELD); fl;
             fl = ttlv_find_next(fl, SRV_TAG_ADMIN_FIELD)) {
            fprintf(f, "%-16s ", field_name(fl));
            print_value(f, field_value(fl), false);
            fputc('\n', f);
        }
        return;
    }
    /* A table: header from the first record's field names, tab-separated
     * so that scripts can cut(1) it; --json is the stable format. */
    if (!first) {
        fprintf(f, "(none)\n");
        return;
    }
    for (const ttlv_item_t *fl = ttlv_find(first, SRV_TAG_ADMIN_FIELD); fl;
         fl = ttlv_find_next(fl, SRV_TAG_ADMIN_FIELD))
        fprintf(f, "%s%s", fl == ttlv_find(first, SRV_TAG_ADMIN_FIELD) ? "" : "\t", field_name(fl));
    fputc('\n', f);
    for (const ttlv_item_t *r = first; r; r = ttlv_find_next(r, SRV_TAG_ADMIN_RECORD)) {
        bool fst = true;
        for (const ttlv_item_t *fl = ttlv_find(r, SRV_TAG_ADMIN_FIELD); fl;
             fl = ttlv_find_next(fl, SRV_TAG_ADMIN_FIELD)) {
            if (!fst)
                fputc('\t', f);
            fst = false;
            print_value(f, field_value(fl), false);
        }
        fputc('\n', f);
    }
}
