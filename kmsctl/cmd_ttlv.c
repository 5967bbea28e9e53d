/*
 * kmsctl/cmd_ttlv.c: `kmsctl ttlv decode|encode`, the message codec on the
 * command line. decode reads a KMIP message in one of its encodings (TTLV
 * bytes, or hex text with --hex; the JSON or XML encoding with --format)
 * and prints it in the KMIP test-case document's form; encode reads that
 * printed form back and writes the message in the chosen encoding. Piping
 * one into the other converts between encodings:
 *   kmsctl ttlv decode --format json req.json | kmsctl ttlv encode --format xml
 * Malformed input gives one line on stderr naming the byte offset (or, for
 * JSON past its syntax, the item's path), and exit status 2.
 *
 * It deliberately talks to no server and reads no configuration: it is a
 * debugging tool for captured messages. Output of decode is not redacted
 * unless --redact is given, since the operator asked to see the message.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsctl/kmsctl.h"
#include "ttlv/ttlv.h"

/* Largest input accepted: far above any KMIP message, small enough to read whole. */
#define TTLV_CLI_MAX_INPUT (64u * 1024 * 1024)

enum msg_format { FMT_TTLV, FMT_JSON, FMT_XML };
static const char *const fmt_names[] = {"ttlv", "json", "xml"};
static const char *const fmt_labels[] = {"TTLV", "JSON", "XML"};

static void ttlv_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl ttlv decode [--format ttlv|json|xml] [--hex] [--redact] [FILE|-]\n"
            "       kmsctl ttlv encode [--format ttlv|json|xml] [--hex] [FILE|-]\n"
            "\n"
            "decode  read one KMIP message and print it as\n"
            "        'Tag: Name (0x420078), Type: Structure (0x01), Data: ...' lines.\n"
            "        --redact prints key material, passwords and private key parts as <redacted>.\n"
            "encode  read that printed form and write the message.\n"
            "--format  the message encoding read by decode and written by encode: ttlv\n"
            "        (binary TTLV, the default; one line of hex with --hex), or the JSON or\n"
            "        XML encoding of the KMIP 1.3+ profiles. To convert, pipe decode into\n"
            "        encode: kmsctl ttlv decode --format json m.json | kmsctl ttlv encode --format xml\n"
            "Input is FILE, or standard input when FILE is '-' or absent.\n"
            "exit status: 0 ok, 1 I/O error, 2 usage or malformed input (the message names\n"
            "the byte offset)\n");
}

/* Reads all of FILE (or stdin) into a malloc'ed buffer with a NUL after it. */
static int read_input(const char *path, uint8_t **out, size_t *len_out)
{
    FILE *f = stdin;
    kms_buf_t b;
    int rc = 0;
    kms_buf_init(&b, TTLV_CLI_MAX_INPUT + 1);
    if (path && strcmp(path, "-") != 0) {
        f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "kmsctl ttlv: %s: %s\n", path, strerror(errno));
            return KMSCTL_EXIT_FAIL;
        }
    }
    for (;;) {
        uint8_t chunk[65536];
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0 && (rc = kms_buf_append(&b, chunk, n)) != 0)
            break;
        if (n < sizeof(chunk))
            break;
    }
    if (rc == KMS_ERR_LIMIT || (rc == 0 && b.len > TTLV_CLI_MAX_INPUT)) {
        fprintf(stderr, "kmsctl ttlv: input larger than %u bytes\n", TTLV_CLI_MAX_INPUT);
        rc = KMSCTL_EXIT_USAGE;
    } else if (rc) {
        fprintf(stderr, "kmsctl ttlv: %s\n", kms_strerror(rc));
        rc = KMSCTL_EXIT_FAIL;
    } else if (ferror(f)) {
        fprintf(stderr, "kmsctl ttlv: read error: %s\n", strerror(errno));
        rc = KMSCTL_EXIT_FAIL;
    } else if ((rc = kms_buf_append_byte(&b, 0)) != 0) {
        fprintf(stderr, "kmsctl ttlv: %s\n", kms_strerror(rc));
        rc = KMSCTL_EXIT_FAIL;
    }
    if (f != stdin)
        fclose(f);
    if (rc) {
        kms_buf_dispose_wipe(&b);
        return rc;
    }
    *len_out = b.len - 1;
    *out = kms_buf_take(&b, NULL);
    return 0;
}

static int write_all(const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, stdout) != n) {
        fprintf(stderr, "kmsctl ttlv: write error: %s\n", strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "kmsctl ttlv: write error: %s\n", strerror(errno));
        return KMSCTL_EXIT_FAIL;
    }
    return 0;
}

/* The message in `in` (format fmt; TTLV bytes already un-hexed) as a tree. */
static int read_message(enum msg_format fmt, const uint8_t *in, size_t inlen, kms_arena_t *arena,
                        ttlv_item_t **root_out)
{
    ttlv_limits_t lim = {.max_size = TTLV_CLI_MAX_INPUT};
    kms_error_t err;
    int rc;
    if (fmt == FMT_JSON)
        rc = ttlv_from_json((const char *)in, inlen, &lim, arena, root_out, &err);
    else if (fmt == FMT_XML)
        rc = ttlv_from_xml((const char *)in, inlen, &lim, arena, root_out, &err);
    else
        rc = ttlv_decode(in, inlen, &lim, arena, root_out, &err);
    if (rc == 0)
        return 0;
    if (err.offset != KMS_ERROR_NO_OFFSET)
        fprintf(stderr, "kmsctl ttlv decode: malformed %s at byte offset %zu (0x%zX): %s\n", fmt_labels[fmt],
                err.offset, err.offset, kms_error_msg(&err));
    else
        fprintf(stderr, "kmsctl ttlv decode: malformed %s: %s\n", fmt_labels[fmt], kms_error_msg(&err));
    return rc == KMS_ERR_NOMEM ? KMSCTL_EXIT_FAIL : KMSCTL_EXIT_USAGE;
}

static int do_decode(const char *path, enum msg_format fmt, bool hex, bool redact)
{
    uint8_t *in = NULL, *bin = NULL;
    size_t inlen = 0, binlen = 0;
    kms_arena_t *arena = NULL;
    kms_buf_t out;
    ttlv_item_t *root = NULL;
    int ret = read_input(path, &in, &inlen);
    kms_buf_init(&out, 0);
    if (ret)
        goto out;
    if (hex) {
        if (kms_hex_decode((const char *)in, inlen, &bin, &binlen) != 0) {
            fprintf(stderr, "kmsctl ttlv decode: input is not hex (odd digit count or a non-hex character)\n");
            ret = KMSCTL_EXIT_USAGE;
            goto out;
        }
    }
    arena = kms_arena_new(0);
    if (!arena) {
        fprintf(stderr, "kmsctl ttlv decode: out of memory\n");
        ret = KMSCTL_EXIT_FAIL;
        goto out;
    }
    ret = read_message(fmt, hex ? bin : in, hex ? binlen : inlen, arena, &root);
    if (ret)
        goto out;
    int rc = ttlv_print(root, redact, &out);
    if (rc) {
        fprintf(stderr, "kmsctl ttlv decode: %s\n", kms_strerror(rc));
        ret = KMSCTL_EXIT_FAIL;
        goto out;
    }
    ret = write_all(out.data, out.len);
out:
    kms_buf_dispose_wipe(&out);
    kms_arena_free(arena);
    if (bin) {
        kms_wipe(bin, binlen);
        free(bin);
    }
    if (in) {
        kms_wipe(in, inlen);
        free(in);
    }
    return ret;
}

static int do_encode(const char *path, enum msg_format fmt, bool hex)
{
    uint8_t *in = NULL;
    size_t inlen = 0;
    kms_arena_t *arena = NULL;
    kms_buf_t out;
    char *hexout = NULL;
    ttlv_item_t *root = NULL;
    kms_error_t err;
    int ret = read_input(path, &in, &inlen);
    kms_buf_init(&out, 0);
    if (ret)
        goto out;
    arena = kms_arena_new(0);
    if (!arena) {
        fprintf(stderr, "kmsctl ttlv encode: out of memory\n");
        ret = KMSCTL_EXIT_FAIL;
        goto out;
    }
    int rc = ttlv_parse_text((const char *)in, inlen, arena, &root, &err);
    if (rc) {
        fprintf(stderr, "kmsctl ttlv encode: malformed text at byte offset %zu: %s\n", err.offset,
                err.msg[0] ? err.msg : kms_strerror(rc));
        ret = rc == KMS_ERR_NOMEM ? KMSCTL_EXIT_FAIL : KMSCTL_EXIT_USAGE;
        goto out;
    }
    if (fmt == FMT_JSON)
        rc = ttlv_to_json(root, TTLV_FORM_PRETTY, &out, &err);
    else if (fmt == FMT_XML)
        rc = ttlv_to_xml(root, TTLV_FORM_PRETTY, &out, &err);
    else
        rc = ttlv_encode(root, &out);
    if (rc == 0 && fmt == FMT_JSON)
        rc = kms_buf_append_byte(&out, '\n'); /* the XML form ends its last line itself */
    if (rc) {
        fprintf(stderr, "kmsctl ttlv encode: cannot encode: %s\n",
                fmt == FMT_TTLV ? kms_strerror(rc) : kms_error_msg(&err));
        ret = KMSCTL_EXIT_USAGE;
        goto out;
    }
    if (!hex) {
        ret = write_all(out.data, out.len);
        goto out;
    }
    if (out.len > (SIZE_MAX - 2) / 2 || !(hexout = malloc(2 * out.len + 2))) {
        fprintf(stderr, "kmsctl ttlv encode: out of memory\n");
        ret = KMSCTL_EXIT_FAIL;
        goto out;
    }
    kms_hex_encode(out.data, out.len, hexout);
    for (size_t i = 0; i < 2 * out.len; i++) /* upper case, as the KMIP documents write it */
        if (hexout[i] >= 'a' && hexout[i] <= 'f')
            hexout[i] = (char)(hexout[i] - 'a' + 'A');
    hexout[2 * out.len] = '\n';
    ret = write_all(hexout, 2 * out.len + 1);
out:
    if (hexout) {
        kms_wipe(hexout, 2 * out.len + 2);
        free(hexout);
    }
    kms_buf_dispose_wipe(&out);
    kms_arena_free(arena);
    if (in) {
        kms_wipe(in, inlen);
        free(in);
    }
    return ret;
}

int cmd_ttlv(int argc, char **argv)
{
    bool hex = false, redact = false, decode;
    enum msg_format fmt = FMT_TTLV;
    const char *path = NULL;

    if (argc < 2) {
        ttlv_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        ttlv_usage(stdout);
        return KMSCTL_EXIT_OK;
    }
    if (strcmp(argv[1], "decode") == 0) {
        decode = true;
    } else if (strcmp(argv[1], "encode") == 0) {
        decode = false;
    } else {
        fprintf(stderr, "kmsctl ttlv: unknown subcommand '%s'\n", argv[1]);
        ttlv_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ttlv_usage(stdout);
            return KMSCTL_EXIT_OK;
        } else if (strcmp(argv[i], "--hex") == 0) {
            hex = true;
        } else if (strcmp(argv[i], "--format") == 0 || strncmp(argv[i], "--format=", 9) == 0) {
            const char *v = argv[i][8] == '=' ? argv[i] + 9 : (i + 1 < argc ? argv[++i] : "");
            size_t f = 0;
            while (f < KMS_ARRAY_SIZE(fmt_names) && strcmp(v, fmt_names[f]) != 0)
                f++;
            if (f == KMS_ARRAY_SIZE(fmt_names)) {
                fprintf(stderr, "kmsctl ttlv %s: --format takes ttlv, json or xml\n", argv[1]);
                return KMSCTL_EXIT_USAGE;
            }
            fmt = (enum msg_format)f;
        } else if (decode && strcmp(argv[i], "--redact") == 0) {
            redact = true;
        } else if (argv[i][0] == '-' && argv[i][1] != 0) {
            fprintf(stderr, "kmsctl ttlv %s: unknown option %s\n", argv[1], argv[i]);
            ttlv_usage(stderr);
            return KMSCTL_EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "kmsctl ttlv %s: only one input file\n", argv[1]);
            return KMSCTL_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (hex && fmt != FMT_TTLV) {
        fprintf(stderr, "kmsctl ttlv %s: --hex goes with --format ttlv only\n", argv[1]);
        return KMSCTL_EXIT_USAGE;
    }
    return decode ? do_decode(path, fmt, hex, redact) : do_encode(path, fmt, hex);
}
