/* tests/unit/test_ttlv_cli.c: the real `kmsctl ttlv decode|encode` binary
 * (BUILD/kmsctl next to this test's BUILD/tests/, or $KMSD_BUILD/kmsctl):
 * hex and binary input, round trips through files and pipes, --redact,
 * --format json|xml conversions, --help, and malformed input giving exit
 * status 2 with one stderr line that names the byte offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "ttlv/ttlv.h"

static char kmsctl[4096];
static char dir[] = "/tmp/ttlv-cli.XXXXXX";

/* The hex of message `index` of tests/vectors/kmip-1.1-testcases.txt. */
static const char *vec_hex(int index)
{
    static char line[200000];
    FILE *f = fopen("tests/vectors/kmip-1.1-testcases.txt", "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (line[0] != '#' && atoi(line) == index) {
            fclose(f);
            line[strcspn(line, "\n")] = 0;
            return strrchr(line, '\t') + 1;
        }
    }
    fclose(f);
    fail_msg("vector %d not found", index);
    return NULL;
}

static void put_file(const char *name, const void *p, size_t n)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static char *get_file(const char *name, size_t *len_out)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    kms_buf_t b;
    kms_buf_init(&b, 0);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(kms_buf_append(&b, chunk, n), 0);
    fclose(f);
    assert_int_equal(kms_buf_append_byte(&b, 0), 0);
    size_t len;
    char *p = (char *)kms_buf_take(&b, &len);
    if (len_out)
        *len_out = len - 1;
    return p;
}

/* Runs `kmsctl ARGS` in dir (a shell command line); returns the exit status. */
static int run(const char *args)
{
    char cmd[10000];
    snprintf(cmd, sizeof(cmd), "cd '%s' && K='%s' && \"$K\" %s", dir, kmsctl, args);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("KMSD_BUILD");
    if (b && *b) {
        snprintf(kmsctl, sizeof(kmsctl), "%s/kmsctl", b);
    } else {
        /* this binary is BUILD/tests/test_ttlv_cli */
        char self[3000];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            return -1;
        self[n] = 0;
        *strrchr(self, '/') = 0;
        *strrchr(self, '/') = 0;
        snprintf(kmsctl, sizeof(kmsctl), "%s/kmsctl", self);
    }
    if (access(kmsctl, X_OK) != 0) {
        fprintf(stderr, "kmsctl not found at %s (build it first)\n", kmsctl);
        return -1;
    }
    if (!mkdtemp(dir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_decode_encode_hex(void **state)
{
    (void)state;
    const char *hex = vec_hex(4); /* 3.1.2 Register (template) request */
    put_file("m.hex", hex, strlen(hex));
    assert_int_equal(run("ttlv decode --hex m.hex > m.txt 2> err.txt"), 0);

    /* the CLI prints exactly what the library prints */
    uint8_t *bin;
    size_t len;
    assert_int_equal(kms_hex_decode(hex, strlen(hex), &bin, &len), 0);
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *root;
    kms_error_t err;
    assert_int_equal(ttlv_decode(bin, len, NULL, a, &root, &err), 0);
    kms_buf_t p;
    kms_buf_init(&p, 0);
    assert_int_equal(ttlv_print(root, false, &p), 0);
    size_t tl;
    char *txt = get_file("m.txt", &tl);
    assert_int_equal(tl, p.len);
    assert_memory_equal(txt, p.data, p.len);
    assert_non_null(strstr(txt, "Tag: Template-Attribute (0x420091), Type: Structure (0x01), Data: null\n"));

    /* and encodes it back: hex, then binary through a pipe */
    assert_int_equal(run("ttlv encode --hex m.txt > back.hex"), 0);
    char *back = get_file("back.hex", NULL);
    assert_int_equal(strlen(back), strlen(hex) + 1);
    assert_memory_equal(back, hex, strlen(hex)); /* upper case, as the document */
    assert_int_equal(back[strlen(hex)], '\n');
    assert_int_equal(run("ttlv encode < m.txt > back.bin"), 0);
    size_t bl;
    char *bb = get_file("back.bin", &bl);
    assert_int_equal(bl, len);
    assert_memory_equal(bb, bin, len);
    /* binary decode from stdin ("-") */
    assert_int_equal(run("ttlv decode - < back.bin > m2.txt"), 0);
    char *txt2 = get_file("m2.txt", NULL);
    assert_string_equal(txt, txt2);

    free(txt2);
    free(bb);
    free(back);
    free(txt);
    kms_buf_dispose(&p);
    kms_arena_free(a);
    free(bin);
}

static void test_redact(void **state)
{
    (void)state;
    const char *hex = vec_hex(19); /* Register of a 3DES key with its Key Material */
    put_file("k.hex", hex, strlen(hex));
    assert_int_equal(run("ttlv decode --hex k.hex > k.txt"), 0);
    char *plain = get_file("k.txt", NULL);
    const char *km = strstr(plain, "Tag: Key Material (0x420043), Type: Byte String (0x08), Data: ");
    assert_non_null(km);
    char keyhex[17];
    memcpy(keyhex, km + strlen("Tag: Key Material (0x420043), Type: Byte String (0x08), Data: "), 16);
    keyhex[16] = 0;
    assert_int_equal(run("ttlv decode --hex --redact k.hex > kr.txt"), 0);
    char *red = get_file("kr.txt", NULL);
    assert_null(strstr(red, keyhex));
    assert_non_null(strstr(red, "Tag: Key Material (0x420043), Type: Byte String (0x08), Data: <redacted>\n"));
    /* a redacted dump cannot be encoded */
    assert_int_equal(run("ttlv encode kr.txt > /dev/null 2> err.txt"), 2);
    free(red);
    free(plain);
}

static void test_malformed(void **state)
{
    (void)state;
    /* Boolean with value 2: offset 8 */
    put_file("bad.hex", "42002006000000080000000000000002\n", 33);
    assert_int_equal(run("ttlv decode --hex bad.hex > out.txt 2> err.txt"), 2);
    size_t n;
    char *e = get_file("err.txt", &n);
    assert_non_null(strstr(e, "byte offset 8"));
    assert_non_null(strstr(e, "Boolean"));
    assert_int_equal(strchr(e, '\n') - e, (long)n - 1); /* exactly one line */
    free(e);
    char *o = get_file("out.txt", &n);
    assert_int_equal(n, 0);
    free(o);

    /* not hex */
    put_file("nothex.hex", "42 00 2G\n", 9);
    assert_int_equal(run("ttlv decode --hex nothex.hex 2> err.txt"), 2);
    /* truncated binary from stdin */
    put_file("short.bin", "\x42\x00\x78\x01\x00\x00\x01\x00", 8);
    assert_int_equal(run("ttlv decode < short.bin 2> err.txt"), 2);
    e = get_file("err.txt", NULL);
    assert_non_null(strstr(e, "byte offset 4"));
    free(e);
    /* bad text for encode: offset of the value */
    put_file("bad.txt", "Tag: Operation, Type: Enumeration, Data: Bogus\n", 47);
    assert_int_equal(run("ttlv encode bad.txt 2> err.txt"), 2);
    e = get_file("err.txt", NULL);
    assert_non_null(strstr(e, "byte offset 41"));
    free(e);
    /* a missing file is an I/O failure, not malformed input */
    assert_int_equal(run("ttlv decode no-such-file 2> /dev/null"), 1);
}

static void test_usage(void **state)
{
    (void)state;
    assert_int_equal(run("ttlv --help > help.txt"), 0);
    char *h = get_file("help.txt", NULL);
    assert_non_null(strstr(h, "kmsctl ttlv decode [--format ttlv|json|xml] [--hex] [--redact] [FILE|-]"));
    free(h);
    assert_int_equal(run("ttlv decode --help > help.txt"), 0);
    assert_int_equal(run("ttlv encode --help > help.txt"), 0);
    assert_int_equal(run("ttlv 2> /dev/null"), 2);
    assert_int_equal(run("ttlv frobnicate 2> /dev/null"), 2);
    assert_int_equal(run("ttlv decode --bogus 2> /dev/null"), 2);
    assert_int_equal(run("ttlv encode --redact 2> /dev/null"), 2);
    assert_int_equal(run("ttlv decode a b 2> /dev/null"), 2);
    assert_int_equal(run("ttlv decode --format yaml 2> /dev/null"), 2);
    assert_int_equal(run("ttlv decode --format 2> /dev/null"), 2);
    assert_int_equal(run("ttlv encode --format json --hex 2> /dev/null"), 2);
}

/* TTLV -> JSON -> XML -> TTLV through files and pipes gives the bytes back. */
static void test_formats(void **state)
{
    (void)state;
    const char *hex = vec_hex(19); /* Get response with a 3DES key */
    put_file("f.hex", hex, strlen(hex));
    assert_int_equal(run("ttlv decode --hex f.hex | \"$K\" ttlv encode --format json > f.json"), 0);
    char *json = get_file("f.json", NULL);
    assert_non_null(strstr(json, "\"value\": \"7367578051012a6d134a855e25c8cd5e4ca131455729d3c8\""));
    assert_non_null(strstr(json, "\"value\": \"DES3\""));
    assert_int_equal(run("ttlv decode --format json f.json | \"$K\" ttlv encode --format=xml > f.xml"), 0);
    char *xml = get_file("f.xml", NULL);
    assert_true(strncmp(xml, "<ResponseMessage>\n  <ResponseHeader>\n", 37) == 0);
    assert_int_equal(run("ttlv decode --format xml < f.xml | \"$K\" ttlv encode --format ttlv --hex > back.hex"), 0);
    char *back = get_file("back.hex", NULL);
    assert_int_equal(strlen(back), strlen(hex) + 1);
    assert_memory_equal(back, hex, strlen(hex));

    /* malformed input: exit 2, one line naming where */
    const char *bj = "{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":2}";
    put_file("bad.json", bj, strlen(bj));
    assert_int_equal(run("ttlv decode --format json bad.json 2> err.txt"), 2);
    char *e = get_file("err.txt", NULL);
    assert_non_null(strstr(e, "malformed JSON: JSON Fresh: bad Boolean"));
    free(e);
    const char *bx = "<RequestPayload>\n <Fresh type=\"Boolean\" value=\"2\"/></RequestPayload>";
    put_file("bad.xml", bx, strlen(bx));
    assert_int_equal(run("ttlv decode --format xml bad.xml 2> err.txt"), 2);
    e = get_file("err.txt", NULL);
    assert_non_null(strstr(e, "malformed XML at byte offset 18 (0x12): XML RequestPayload/Fresh: bad Boolean"));
    free(e);
    free(back);
    free(xml);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_encode_hex),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
