/*
 * kmsctl/cmd_audit.c: `kmsctl audit verify FILE...` and `kmsctl audit status`.
 *
 * verify re-computes the hash chain of kmsd's audit files offline: each
 * line's "prev" field must be the SHA-256 of the line before it (the first
 * line of the first file: the all-zero genesis hash, unless --continue) and
 * "seq" must count up by one, so an edited, inserted or removed line is
 * found and named (FILE:LINE). It is written independently of the writer
 * (audit/audit.c) on purpose. It cannot notice lines cut off the end of
 * the newest file: compare the last hash with `kmsctl audit status`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

#define PREV_SUFFIX_LEN (9 + 64 + 2) /* ,"prev":" + hex + "} */
/* The hash the very first line chains to (audit/audit.h's AUDIT_GENESIS,
 * restated here: the verifier shares no code with the writer). */
#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

static bool is_hex64(const char *p)
{
    for (int i = 0; i < 64; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

int kmsctl_audit_verify_files(char *const *files, size_t n, bool cont, uint64_t *lines_out,
                              char *last_hash_out, kms_error_t *err)
{
    char expect[65];
    memcpy(expect, GENESIS_HASH, 65);
    unsigned long long expect_seq = 1;
    bool first = true;
    const char *prev_file = "";
    unsigned long prev_line = 0;
    uint64_t lines = 0;
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    kms_error_clear(err);
    for (size_t f = 0; f < n && rc == 0; f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp) {
            rc = kms_error_set(err, KMS_ERR_IO, "%s: %s", files[f], strerror(errno));
            break;
        }
        unsigned long lineno = 0;
        ssize_t len;
        while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
            lineno++;
#define BAD(...)                                                            \
    do {                                                                    \
        char why_[200];                                                     \
        snprintf(why_, sizeof why_, __VA_ARGS__);                           \
        rc = kms_error_set(err, KMS_ERR_PROTO, "%s:%lu: %s", files[f], lineno, why_); \
    } while (0)
            if (len == 0 || line[len - 1] != '\n') {
                BAD("incomplete last line (no newline)");
                break;
            }
            line[--len] = '\0';
            unsigned long long seq = 0;
            int consumed = 0;
            if ((size_t)len < PREV_SUFFIX_LEN + 10 ||
                sscanf(line, "{\"seq\":%llu,%n", &seq, &consumed) != 1 || consumed == 0) {
                BAD("not an audit record");
                break;
            }
            const char *suf = line + len - PREV_SUFFIX_LEN;
            if (strncmp(suf, ",\"prev\":\"", 9) != 0 || strcmp(suf + 9 + 64, "\"}") != 0 ||
                !is_hex64(suf + 9)) {
                BAD("no \"prev\" hash at the end of the record");
                break;
            }
            if (first && cont) {
                memcpy(expect, suf + 9, 64);
                expect_seq = seq;
            }
            if (seq != expect_seq) {
                BAD("sequence %llu where %llu was expected: a line was removed or inserted here",
                    seq, expect_seq);
                break;
            }
            if (memcmp(suf + 9, expect, 64) != 0) {
                if (first) {
                    BAD("the first line does not chain to the genesis hash (a line was removed "
                        "before it, or use --continue for a file that continues an older one)");
                } else {
                    /* Same sequence, other hash: the previous line was edited
                     * (or this line's "prev" field was). Name the edited one. */
                    rc = kms_error_set(err, KMS_ERR_PROTO,
                                       "%s:%lu: record edited: its SHA-256 is not the \"prev\" "
                                       "recorded by the next record (%s:%lu)",
                                       prev_file, prev_line, files[f], lineno);
                }
                break;
            }
            first = false;
            prev_file = files[f];
            prev_line = lineno;
            unsigned char md[32];
            unsigned int mdlen = 0;
            if (!EVP_Digest(line, (size_t)len, md, &mdlen, EVP_sha256(), NULL)) {
                rc = kms_error_set(err, KMS_ERR_CRYPTO, "SHA-256 failed");
                break;
            }
            kms_hex_encode(md, sizeof(md), expect);
            expect_seq = seq + 1;
            lines++;
#undef BAD
        }
        if (rc == 0 && ferror(fp)) {
            rc = kms_error_set(err, KMS_ERR_IO, "%s: read error", files[f]);
        }
        fclose(fp);
    }
    free(line);
    if (lines_out)
        *lines_out = lines;
    if (last_hash_out)
        memcpy(last_hash_out, expect, 65);
    return rc;
}

static void usage_audit(FILE *f)
{
    fprintf(f,
            "usage: kmsctl audit verify [--continue] FILE...\n"
            "       kmsctl [--config FILE] [--json] audit status\n\n"
            "verify  check the hash chain of audit files, oldest first (rotated files\n"
            "        PATH.<time>.<seq> in name order, then PATH). The first line must\n"
            "        chain to the genesis hash unless --continue is given (files that\n"
            "        continue an older file not listed). Names the first bad line.\n"
            "status  ask kmsd for its audit file, last sequence number and hash.\n\n"
            "exit status: 0 chain intact, 1 chain broken or kmsd refused, 2 usage,\n"
            "             3 cannot read a file / reach kmsd\n");
}

static int audit_verify(int argc, char **argv)
{
    bool cont = false;
    int i = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--continue") == 0) {
            cont = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage_audit(stdout);
            return KMSCTL_EXIT_OK;
        } else {
            usage_audit(stderr);
            return KMSCTL_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage_audit(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    kms_error_t err;
    char last[65];
    uint64_t lines = 0;
    int rc = kmsctl_audit_verify_files(argv + i, (size_t)(argc - i), cont, &lines, last, &err);
    const char *where = kms_error_msg(&err);
    if (kmsctl_g.json) {
        printf("{\"ok\":%s,\"lines\":%llu,\"last_hash\":\"%s\"", rc == 0 ? "true" : "false",
               (unsigned long long)lines, rc == 0 ? last : "");
        if (rc != 0) {
            printf(",\"error\":\"");
            for (const char *p = where; *p; p++) {
                if (*p == '"' || *p == '\\')
                    printf("\\%c", *p);
                else if ((unsigned char)*p < 0x20)
                    printf("\\u%04x", *p);
                else
                    putchar(*p);
            }
            printf("\"");
        }
        printf("}\n");
    } else if (rc == 0) {
        printf("ok: %llu lines, chain intact, last hash %s\n", (unsigned long long)lines, last);
    } else {
        fprintf(stderr, "kmsctl audit verify: %s\n", where);
    }
    if (rc == 0)
        return KMSCTL_EXIT_OK;
    return rc == KMS_ERR_PROTO ? KMSCTL_EXIT_FAIL : KMSCTL_EXIT_UNREACHABLE;
}

static int audit_status(void)
{
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMSCTL_EXIT_FAIL;
    ttlv_item_t *resp = NULL;
    ttlv_item_t *req = admin_request_new(a, "audit.status");
    int ec = req ? kmsctl_admin_call(a, req, &resp) : KMSCTL_EXIT_FAIL;
    if (ec == 0)
        kmsctl_print_records(stdout, resp, true);
    kms_arena_free(a);
    return ec;
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_audit(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    if (strcmp(argv[1], "verify") == 0)
        return audit_verify(argc - 2, argv + 2);
    if (strcmp(argv[1], "status") == 0) {
        if (argc > 2 && strcmp(argv[2], "--help") == 0) {
            usage_audit(stdout);
            return KMSCTL_EXIT_OK;
        }
        return audit_status();
    }
    usage_audit(stderr);
    return KMSCTL_EXIT_USAGE;
}
