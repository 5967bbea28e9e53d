/*
 * tests/unit/test_server_http.c: the HTTPS listener's request reader
 * (server/http_parse.c on libhttp-parser): routes and methods, the body's
 * encoding from Content-Type, the caps (headers 431, target 414, body 413),
 * Expect: 100-continue, keep-alive, chunked bodies, and the pause after
 * each request that keeps pipelined requests unparsed until the previous
 * one is answered. The connection side (TLS, certificates, KMIP) is tested
 * against a running kmsd in tests/interop/test_http.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/http_int.h"

static const srv_hreq_limits_t LIM = {.max_header = 512, .max_body = 64};

/* Feed all of s in pieces of `piece` bytes until a request completes or
 * fails; returns the state and how much was consumed. */
static enum srv_hreq_state feed(srv_hreq_t *r, const char *s, size_t piece, size_t *used_out)
{
    size_t len = strlen(s), off = 0;
    enum srv_hreq_state st = SRV_HREQ_MORE;
    while (off < len) {
        size_t n = len - off < piece ? len - off : piece;
        size_t used = srv_hreq_feed(r, (const uint8_t *)s + off, n, &st);
        off += used;
        if (st != SRV_HREQ_MORE)
            break;
        assert_int_equal(used, n);
    }
    if (used_out)
        *used_out = off;
    return st;
}

static void expect_error(const char *req, int status)
{
    srv_hreq_t r;
    srv_hreq_init(&r, &LIM);
    assert_int_equal(feed(&r, req, 7, NULL), SRV_HREQ_ERROR);
    assert_int_equal(r.status, status);
    assert_non_null(r.why);
    srv_hreq_dispose(&r);
}

static void test_routes(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        enum srv_http_route route;
        bool head;
    } ok[] = {
        {"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", SRV_HTTP_ROUTE_METRICS, false},
        {"HEAD /healthz HTTP/1.1\r\n\r\n", SRV_HTTP_ROUTE_HEALTHZ, true},
        {"GET /readyz?verbose=1 HTTP/1.1\r\n\r\n", SRV_HTTP_ROUTE_READYZ, false},
    };
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ok); i++) {
        srv_hreq_t r;
        srv_hreq_init(&r, &LIM);
        assert_int_equal(feed(&r, ok[i].req, 3, NULL), SRV_HREQ_COMPLETE);
        assert_int_equal(r.route, ok[i].route);
        assert_int_equal(r.head_only, ok[i].head);
        assert_true(r.keep_alive);
        srv_hreq_dispose(&r);
    }
    expect_error("GET /nope HTTP/1.1\r\n\r\n", 404);
    expect_error("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405);
    expect_error("GET /kmip HTTP/1.1\r\n\r\n", 405);
    expect_error("GET /healthz HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 400);
    expect_error("\x16\x03\x01\x02\x00garbage\r\n\r\n", 400);
    /* 405 says what the route takes. */
    srv_hreq_t r;
    srv_hreq_init(&r, &LIM);
    assert_int_equal(feed(&r, "PUT /kmip HTTP/1.1\r\n\r\n", 100, NULL), SRV_HREQ_ERROR);
    assert_string_equal(r.allow, "POST");
    srv_hreq_dispose(&r);
}

static void test_kmip_encodings(void **state)
{
    (void)state;
    static const struct {
        const char *ctype;
        enum srv_http_enc enc;
    } ok[] = {
        {"application/octet-stream", SRV_HTTP_ENC_TTLV},
        {"Application/JSON; charset=utf-8", SRV_HTTP_ENC_JSON},
        {"text/xml", SRV_HTTP_ENC_XML},
        {" application/xml ", SRV_HTTP_ENC_XML},
    };
    char req[256];
    for (size_t i = 0; i < KMS_ARRAY_SIZE(ok); i++) {
        snprintf(req, sizeof req,
                 "POST /kmip HTTP/1.1\r\nContent-Type:%s\r\nContent-Length: 5\r\n\r\nhello",
                 ok[i].ctype);
        srv_hreq_t r;
        srv_hreq_init(&r, &LIM);
        assert_int_equal(feed(&r, req, 5, NULL), SRV_HREQ_COMPLETE);
        assert_int_equal(r.route, SRV_HTTP_ROUTE_KMIP);
        assert_int_equal(r.enc, ok[i].enc);
        assert_int_equal(r.body.len, 5);
        assert_memory_equal(r.body.data, "hello", 5);
        srv_hreq_dispose(&r);
    }
    expect_error("POST /kmip HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx", 415);
    expect_error("POST /kmip HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 415);
    expect_error("POST /kmip HTTP/1.1\r\nContent-Type: text/xml\r\nContent-Type: text/xml\r\n\r\n",
                 400);
    /* Chunked bodies are decoded; the chunk framing is not body. */
    srv_hreq_t r;
    srv_hreq_init(&r, &LIM);
    assert_int_equal(feed(&r,
                          "POST /kmip HTTP/1.1\r\nContent-Type: text/xml\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n4\r\n<a/>\r\n2\r\nxy\r\n0\r\n\r\n",
                          4, NULL),
                     SRV_HREQ_COMPLETE);
    assert_int_equal(r.body.len, 6);
    assert_memory_equal(r.body.data, "<a/>xy", 6);
    srv_hreq_dispose(&r);
}

static void test_caps(void **state)
{
    (void)state;
    char big[2048];
    /* Headers over max_header: 431, however they are cut. */
    snprintf(big, sizeof big, "GET /healthz HTTP/1.1\r\nX-A: %0600d\r\n\r\n", 0);
    expect_error(big, 431);
    /* A long request target: 414. */
    char url[1200];
    memset(url, 'a', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    snprintf(big, sizeof big, "GET /%s HTTP/1.1\r\n\r\n", url);
    srv_hreq_limits_t wide = {.max_header = 4096, .max_body = 64};
    srv_hreq_t r;
    srv_hreq_init(&r, &wide);
    assert_int_equal(feed(&r, big, 100, NULL), SRV_HREQ_ERROR);
    assert_int_equal(r.status, 414);
    srv_hreq_dispose(&r);
    /* A body over max_body: 413, from Content-Length before any body byte,
     * or while a chunked body arrives. */
    expect_error("POST /kmip HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 65\r\n\r\n",
                 413);
    snprintf(big, sizeof big,
             "POST /kmip HTTP/1.1\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n41\r\n%065d\r\n0\r\n\r\n", 0);
    expect_error(big, 413);
    /* A body on a route that takes none is skipped while small. */
    srv_hreq_init(&r, &LIM);
    assert_int_equal(feed(&r, "GET /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 9, NULL),
                     SRV_HREQ_COMPLETE);
    assert_int_equal(r.body.len, 0);
    srv_hreq_dispose(&r);
}

static void test_pipelining_and_keepalive(void **state)
{
    (void)state;
    const char *two = "GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.0\r\n\r\n";
    srv_hreq_t r;
    srv_hreq_init(&r, &LIM);
    size_t used = 0;
    assert_int_equal(feed(&r, two, 1000, &used), SRV_HREQ_COMPLETE);
    /* Parsing stopped at the end of the first request. */
    assert_int_equal(used, strlen("GET /healthz HTTP/1.1\r\n\r\n"));
    assert_int_equal(r.route, SRV_HTTP_ROUTE_HEALTHZ);
    assert_true(r.keep_alive);
    enum srv_hreq_state st;
    assert_int_equal(srv_hreq_feed(&r, (const uint8_t *)two + used, 5, &st), 0);
    assert_int_equal(st, SRV_HREQ_COMPLETE); /* nothing more until answered */
    srv_hreq_next(&r);
    assert_false(r.begun);
    assert_int_equal(feed(&r, two + used, 1000, NULL), SRV_HREQ_COMPLETE);
    assert_int_equal(r.route, SRV_HTTP_ROUTE_READYZ);
    assert_false(r.keep_alive); /* HTTP/1.0 without keep-alive */
    srv_hreq_dispose(&r);
    /* Connection: close on HTTP/1.1. */
    srv_hreq_init(&r, &LIM);
    assert_int_equal(feed(&r, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 8, NULL),
                     SRV_HREQ_COMPLETE);
    assert_false(r.keep_alive);
    srv_hreq_dispose(&r);
}

static void test_expect_continue(void **state)
{
    (void)state;
    srv_hreq_t r;
    srv_hreq_init(&r, &LIM);
    enum srv_hreq_state st;
    const char *h = "POST /kmip HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                    "Expect: 100-continue\r\n\r\n";
    assert_int_equal(srv_hreq_feed(&r, (const uint8_t *)h, strlen(h), &st), strlen(h));
    assert_int_equal(st, SRV_HREQ_MORE);
    assert_true(r.begun && r.continue_due);
    assert_int_equal(srv_hreq_feed(&r, (const uint8_t *)"{}", 2, &st), 2);
    assert_int_equal(st, SRV_HREQ_COMPLETE);
    srv_hreq_dispose(&r);
    expect_error("POST /kmip HTTP/1.1\r\nContent-Type: text/xml\r\nExpect: 200-ok\r\n\r\n", 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_kmip_encodings),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_pipelining_and_keepalive),
        cmocka_unit_test(test_expect_continue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
