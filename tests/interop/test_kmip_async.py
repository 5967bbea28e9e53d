"""tests/interop/test_kmip_async.py: asynchronous operations through a real kmsd.

PyKMIP's client sends no Asynchronous Indicator, Poll or Cancel, so these
requests are raw TTLV (the harness's encoder). An RSA Create Key Pair is
answered Operation Pending and polled to its answer from another TLS
connection; slow PBKDF2 Derive Keys fill the two worker threads so that one
waits in the queue, which Cancel takes back; a kmsd restart (SIGTERM, start
again on the same directory) keeps the answers that were made and turns
what was still queued into a clear failure. PyKMIP's client then reads the
keys the asynchronous Create Key Pair made.

A Derive Key is slow enough only if its PBKDF2 outlasts the requests the
test sends meanwhile: its iteration count comes from the rate kmsd itself
derives at (one synchronous Derive Key first), for about DERIVE_S seconds
each. (A fixed count lasted 1 s in the release build here, and about as
long as the test's own requests on a faster machine; the ASan build's
rate is a third of that.)
"""
import time

import kmsd_harness as h

OP_CREATE_KEY_PAIR, OP_REGISTER, OP_DERIVE_KEY = 0x02, 0x03, 0x05
OP_POLL, OP_CANCEL, OP_GET = 0x1A, 0x19, 0x0A
T_ASYNC_IND, T_CORR, T_CANCEL_RESULT = 0x420007, 0x420006, 0x420012
T_COMMON_TA, T_ATTRIBUTE, T_ATTR_NAME, T_ATTR_VALUE = 0x42001F, 0x420008, 0x42000A, 0x42000B
T_PRIV_UID, T_PUB_UID, T_TEMPLATE_ATTRIBUTE = 0x420066, 0x42006F, 0x420091
T_OBJECT_TYPE, T_SECRET_DATA, T_SECRET_DATA_TYPE = 0x420057, 0x420085, 0x420086
T_KEY_BLOCK, T_KEY_FORMAT_TYPE, T_KEY_VALUE, T_KEY_MATERIAL = 0x420040, 0x420042, 0x420045, 0x420043
T_DERIVATION_METHOD, T_DERIVATION_PARAMETERS, T_CRYPTO_PARAMS = 0x420031, 0x420032, 0x42002B
T_HASHING_ALGORITHM, T_SALT, T_ITERATION_COUNT = 0x420038, 0x420084, 0x42003C
SUCCESS, FAILED, PENDING = 0, 1, 2
CANCELED, UNABLE, COMPLETED, CANCEL_FAILED = 1, 2, 3, 4
DERIVE_S = 2.0
MAX_ITERATIONS = 10000000  # kmsd's CRYPTO_PBKDF2_MAX_ITERATIONS
CANCEL_NAMES = {CANCELED: "Canceled", UNABLE: "Unable to Cancel", COMPLETED: "Completed",
                CANCEL_FAILED: "Failed"}


def attr(name, typ, value):
    return h.item(T_ATTRIBUTE, h.STRUCT, [h.item(T_ATTR_NAME, h.TEXT, name),
                                          h.item(T_ATTR_VALUE, typ, value)])


def message(op, payload, asynchronous=False):
    hdr = [h.item("ProtocolVersion", h.STRUCT, [h.item("Major", h.INT, 1), h.item("Minor", h.INT, 4)])]
    if asynchronous:
        hdr.append(h.item(T_ASYNC_IND, h.BOOL, True))
    hdr.append(h.item("BatchCount", h.INT, 1))
    return h.item("RequestMessage", h.STRUCT, [h.item("RequestHeader", h.STRUCT, hdr),
                                               h.batch_item(op, payload)])


def call(k, op, payload, asynchronous=False):
    resp = h.decode(k.send_ttlv(message(op, payload, asynchronous)))
    return {
        "status": h.find_all(resp, "ResultStatus")[0],
        "reason": (h.find_all(resp, "ResultReason") or [None])[0],
        "message": (h.find_all(resp, "ResultMessage") or [""])[0],
        "op": h.find_all(resp, "Operation")[0],
        "corr": (h.find_all(resp, T_CORR) or [None])[0],
        "tree": resp,
    }


def poll(k, corr):
    return call(k, OP_POLL, [h.item(T_CORR, h.BYTES, corr)])


def poll_done(k, corr, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = poll(k, corr)
        if r["status"] != PENDING:
            return r
        time.sleep(0.05)
    raise AssertionError("still pending after %ss" % timeout)


def cancel(k, corr):
    r = call(k, OP_CANCEL, [h.item(T_CORR, h.BYTES, corr)])
    assert r["status"] == SUCCESS, r
    return h.find_all(r["tree"], T_CANCEL_RESULT)[0]


def derive_payload(pw, iterations):
    return [
        h.item(T_OBJECT_TYPE, h.ENUM, 2),
        h.item("UniqueIdentifier", h.TEXT, pw),
        h.item(T_DERIVATION_METHOD, h.ENUM, 1),  # PBKDF2
        h.item(T_DERIVATION_PARAMETERS, h.STRUCT, [
            h.item(T_CRYPTO_PARAMS, h.STRUCT, [h.item(T_HASHING_ALGORITHM, h.ENUM, 6)]),
            h.item(T_SALT, h.BYTES, b"salt"),
            h.item(T_ITERATION_COUNT, h.INT, iterations)]),
        h.item(T_TEMPLATE_ATTRIBUTE, h.STRUCT, [attr("Cryptographic Algorithm", h.ENUM, 3),
                                                attr("Cryptographic Length", h.INT, 256)]),
    ]


def derive_iterations(k, pw, seconds=DERIVE_S):
    """PBKDF2-SHA-256 iterations kmsd runs in about `seconds` (at least
    100 000, at most what it accepts): its rate over one synchronous Derive
    Key of n, less the round trip of a Query on a new connection."""
    n = 200000
    t0 = time.perf_counter()
    assert h.statuses(k.send_ttlv(h.query_request())) == [SUCCESS]
    t1 = time.perf_counter()
    r = call(k, OP_DERIVE_KEY, derive_payload(pw, n))
    t2 = time.perf_counter()
    assert r["status"] == SUCCESS, r
    rate = n / max((t2 - t1) - (t1 - t0), 1e-3)
    return int(min(MAX_ITERATIONS, max(100000, rate * seconds)))


def register_password(k):
    r = call(k, OP_REGISTER, [
        h.item(T_OBJECT_TYPE, h.ENUM, 7),
        h.item(T_TEMPLATE_ATTRIBUTE, h.STRUCT, [
            attr("Cryptographic Usage Mask", h.INT, 0x200),
            attr("Activation Date", h.DATE, int(time.time()) - 60)]),
        h.item(T_SECRET_DATA, h.STRUCT, [
            h.item(T_SECRET_DATA_TYPE, h.ENUM, 1),
            h.item(T_KEY_BLOCK, h.STRUCT, [
                h.item(T_KEY_FORMAT_TYPE, h.ENUM, 2),
                h.item(T_KEY_VALUE, h.STRUCT, [h.item(T_KEY_MATERIAL, h.BYTES, b"password")])])]),
    ])
    assert r["status"] == SUCCESS, r
    return h.find_all(r["tree"], "UniqueIdentifier")[0]


def test_create_key_pair_pending_then_polled_elsewhere(kmsd):
    r = call(kmsd, OP_CREATE_KEY_PAIR, [h.item(T_COMMON_TA, h.STRUCT, [
        attr("Cryptographic Algorithm", h.ENUM, 4), attr("Cryptographic Length", h.INT, 3072)])],
        asynchronous=True)
    assert r["status"] == PENDING and len(r["corr"]) == 16, r
    # Each call is its own TLS connection.
    done = poll_done(kmsd, r["corr"])
    assert done["status"] == SUCCESS and done["op"] == OP_CREATE_KEY_PAIR, done
    pub = h.find_all(done["tree"], T_PUB_UID)[0]
    c = kmsd.pykmip_client()
    try:
        key = c.get(pub)
        assert key.cryptographic_length == 3072
    finally:
        c.close()
    assert cancel(kmsd, r["corr"]) == COMPLETED
    # Unknown value: Item Not Found. Get with the indicator: answered at once.
    assert poll(kmsd, b"\0" * 16)["reason"] == 1
    assert call(kmsd, OP_GET, [h.item("UniqueIdentifier", h.TEXT, pub)],
                asynchronous=True)["status"] == SUCCESS


def test_cancel_and_restart(kmsd):
    pw = register_password(kmsd)
    iterations = derive_iterations(kmsd, pw)
    corrs = []
    t0 = time.time()
    for _ in range(4):
        r = call(kmsd, OP_DERIVE_KEY, derive_payload(pw, iterations), asynchronous=True)
        assert r["status"] == PENDING, r
        corrs.append(r["corr"])
    # Two run, two wait: the third is taken back.
    got = cancel(kmsd, corrs[2])
    assert got == CANCELED, "the third Derive Key was not queued any more (%s after %.2f s of " \
        "%d iterations each): test too small" % (CANCEL_NAMES.get(got, got), time.time() - t0,
                                                 iterations)
    assert poll(kmsd, corrs[2])["reason"] == 0x09  # Operation Canceled By Requester
    # The first one was taken by a worker as it came (the 0.2 s are for a
    # loaded machine); it runs for seconds yet.
    time.sleep(0.2)
    got = cancel(kmsd, corrs[0])
    assert got != COMPLETED, "the first Derive Key ended within %.2f s: test too small" % (
        time.time() - t0)
    assert got == UNABLE, CANCEL_NAMES.get(got, got)
    # Restart while the fourth still waits: the running ones finish first.
    kmsd.stop(timeout=120)
    kmsd.start()
    assert poll(kmsd, corrs[0])["status"] == SUCCESS
    assert poll(kmsd, corrs[1])["status"] == SUCCESS
    r = poll(kmsd, corrs[3])
    assert r["status"] == FAILED and "restart" in r["message"], r
    assert cancel(kmsd, corrs[3]) == CANCEL_FAILED
