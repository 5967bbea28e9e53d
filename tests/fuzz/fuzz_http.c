/*
 * tests/fuzz/fuzz_http.c: libFuzzer target for the HTTPS listener's
 * request reader (server/http_parse.c on libhttp-parser): headers to
 * request routing.
 *
 * The input is fed in pieces (sizes taken from its first byte, as TLS
 * records would cut it) to one reader, and every complete request is
 * acknowledged with srv_hreq_next so pipelined requests follow. Checked:
 * a feed never consumes more than it is given; a reader that wants more
 * bytes consumed something (no spin); a complete request has a known
 * route, a POST /kmip an encoding and a body within http.max_body; an
 * error carries a 4xx status and a reason, and the reader stays in error.
 * Links server/http_parse.c, common/ and libhttp-parser only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http_int.h"

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "fuzz_http: check failed: %s (line %d)\n", #c, __LINE__);    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    srv_hreq_limits_t lim = {.max_header = 1024, .max_body = 4096};
    srv_hreq_t r;
    srv_hreq_init(&r, &lim);
    size_t off = 0, requests = 0;
    while (off < size) {
        size_t n = size - off < piece ? size - off : piece;
        enum srv_hreq_state st;
        size_t used = srv_hreq_feed(&r, data + off, n, &st);
        CHECK(used <= n);
        off += used;
        if (st == SRV_HREQ_ERROR) {
            CHECK(r.status >= 400 && r.status < 500 && r.why && r.why[0]);
            CHECK(srv_hreq_feed(&r, data, 1, &st) == 0 && st == SRV_HREQ_ERROR);
            break;
        }
        if (st == SRV_HREQ_MORE) {
            CHECK(used == n); /* wanting more means it took everything */
            continue;
        }
        CHECK(r.route >= 0 && r.route < SRV_HTTP_ROUTE_OTHER);
        CHECK(r.body.len <= lim.max_body);
        if (r.route == SRV_HTTP_ROUTE_KMIP)
            CHECK(r.enc != SRV_HTTP_ENC_NONE);
        else
            CHECK(r.body.len == 0);
        CHECK(srv_hreq_feed(&r, data, 1, &st) == 0 && st == SRV_HREQ_COMPLETE);
        srv_hreq_next(&r);
        requests++;
    }
    (void)requests;
    srv_hreq_dispose(&r);
    return 0;
}
