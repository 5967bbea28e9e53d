"""The event-loop paths of kmsd against a real server (server/conn.c).

Get and the other reads run on the loop thread; Create and the other
single-write operations run there too, with their write handed to the
group commit and the answer sent once it is durable; certificate
identities are cached per thread. These tests check what a client must
never notice:

* a client removed with kmsctl is refused on its very next Get over a
  connection that stayed open (the commit drops the identity caches), and
  served again once re-added;
* concurrent single-write operations on one object from many connections
  lose no update (a deferred write whose commit conflicts is re-run);
* pipelined requests on one connection are answered in order, and each
  sees the effects of the ones before it (a Locate finds the key the
  Create just before it made);
* TLS 1.3 and 1.2 sessions stay resumable when the client closes the socket
  without close_notify, as PyKMIP and most KMIP clients do.
"""
import socket
import ssl
import struct
import threading
import uuid

import pytest

from test_tenants import (AUTH_NOT_SUCCESSFUL, FAILED, SUCCESS, TAG, E, I, Kmsd, S, T, attr,
                          create_key, dec, find, find_all, name_attr, need_kmsd)

OP_CREATE, OP_LOCATE, OP_GET, OP_ADD_ATTRIBUTE = 1, 8, 10, 13


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    need_kmsd()
    srv = Kmsd(tmp_path_factory.mktemp("inline") / "kms")
    try:
        yield srv
    finally:
        problems = srv.stop()
    assert not problems, "%s\n%s" % (problems, open(srv.logpath).read()[-4000:])


def admin(k):
    return k.raw(k.pki / "client.crt", k.pki / "client.key")


def test_removed_client_refused_on_next_inline_get(k):
    t = "inl-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("host-" + t)
    k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
    c = k.raw(cert, key)
    try:
        uid = create_key(c, "key-" + t)
        # The first Get clears Fresh (a write: worker); the next ones are
        # pure reads on the loop thread, from the identity cache.
        for _ in range(3):
            st, rs, p = c.request("Get", T(TAG["UID"], uid))
            assert st == SUCCESS, (st, rs)
        k.ctl("client", "remove", "host-" + t, check=0)
        st, rs, _ = c.request("Get", T(TAG["UID"], uid))
        assert (st, rs) == (FAILED, AUTH_NOT_SUCCESSFUL)
        st, rs, _ = c.request("GetAttributes", T(TAG["UID"], uid))
        assert (st, rs) == (FAILED, AUTH_NOT_SUCCESSFUL)
        k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
        st, rs, p = c.request("Get", T(TAG["UID"], uid))
        assert st == SUCCESS, (st, rs)
        assert find(p, TAG["UID"]) == uid
    finally:
        c.close()


def test_concurrent_single_writes_lose_nothing(k):
    """8 connections each add 12 Names to one key at the same time: every
    Add Attribute is acknowledged and every Name is there afterwards."""
    c = admin(k)
    uid = create_key(c, "shared-%s" % uuid.uuid4().hex[:8])
    errors = []

    def worker(n):
        conn = admin(k)
        try:
            for i in range(12):
                st, rs, _ = conn.request("AddAttribute", T(TAG["UID"], uid),
                                         name_attr("n-%d-%d" % (n, i)))
                if st != SUCCESS:
                    errors.append((n, i, st, rs))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((n, repr(e)))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[:5]
    st, rs, p = c.request("GetAttributes", T(TAG["UID"], uid), T(TAG["ATTRIBUTE_NAME"], "Name"))
    c.close()
    assert st == SUCCESS, (st, rs)
    names = set(find_all(find_all_values(p), TAG["NAME_VALUE"]))
    want = {"n-%d-%d" % (n, i) for n in range(8) for i in range(12)}
    assert want <= names, sorted(want - names)[:10]


def find_all_values(payload):
    """Every Attribute Value structure of a Get Attributes payload, flattened."""
    out = []
    for a in payload:
        if a[0] == TAG["ATTRIBUTE"]:
            v = find(a[2], TAG["ATTRIBUTE_VALUE"])
            if isinstance(v, list):
                out.extend(v)
    return out


def _create_msg(name):
    return S(TAG["REQUEST_MESSAGE"], S(
        TAG["REQUEST_HEADER"], S(TAG["PROTOCOL_VERSION"], I(TAG["MAJOR"], 1), I(TAG["MINOR"], 1)),
        I(TAG["BATCH_COUNT"], 1)),
        S(TAG["BATCH_ITEM"], E(TAG["OPERATION"], OP_CREATE), S(
            TAG["REQUEST_PAYLOAD"], E(TAG["OBJECT_TYPE"], 2), S(
                TAG["TEMPLATE_ATTRIBUTE"],
                attr("Cryptographic Algorithm", E(TAG["ATTRIBUTE_VALUE"], 3)),
                attr("Cryptographic Length", I(TAG["ATTRIBUTE_VALUE"], 256)),
                attr("Cryptographic Usage Mask", I(TAG["ATTRIBUTE_VALUE"], 12)),
                name_attr(name)))))


def _locate_msg(name):
    return S(TAG["REQUEST_MESSAGE"], S(
        TAG["REQUEST_HEADER"], S(TAG["PROTOCOL_VERSION"], I(TAG["MAJOR"], 1), I(TAG["MINOR"], 1)),
        I(TAG["BATCH_COUNT"], 1)),
        S(TAG["BATCH_ITEM"], E(TAG["OPERATION"], OP_LOCATE),
          S(TAG["REQUEST_PAYLOAD"], name_attr(name))))


def _read_msg(sock):
    b = b""
    while len(b) < 8:
        chunk = sock.recv(8 - len(b))
        assert chunk, "connection closed"
        b += chunk
    n = struct.unpack(">I", b[4:8])[0]
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        assert chunk, "connection closed"
        body += chunk
    root = dec(b + body)
    return find(root[0][2], TAG["BATCH_ITEM"])


def test_pipelined_writes_answered_in_order_and_visible(k):
    """One send() with Create X, Locate X, Create Y, Locate Y: four answers
    in that order, each Locate finding exactly the key created before it."""
    tag = uuid.uuid4().hex[:8]
    names = ["pipe-%s-%d" % (tag, i) for i in range(3)]
    msgs = b"".join(_create_msg(n) + _locate_msg(n) for n in names)
    c = admin(k)
    try:
        c.sock.sendall(msgs)
        for n in names:
            bi = _read_msg(c.sock)
            assert find(bi, TAG["OPERATION"]) == OP_CREATE
            assert find(bi, TAG["RESULT_STATUS"]) == SUCCESS
            uid = find(find(bi, TAG["RESPONSE_PAYLOAD"]), TAG["UID"])
            bi = _read_msg(c.sock)
            assert find(bi, TAG["OPERATION"]) == OP_LOCATE
            assert find(bi, TAG["RESULT_STATUS"]) == SUCCESS
            assert find_all(find(bi, TAG["RESPONSE_PAYLOAD"]), TAG["UID"]) == [uid], n
    finally:
        c.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_resumes_after_plain_close(k, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(k.pki / "ca.crt"))
    ctx.load_cert_chain(str(k.pki / "client.crt"), str(k.pki / "client.key"))
    ctx.check_hostname = False
    ctx.minimum_version = ctx.maximum_version = version
    query = S(TAG["REQUEST_MESSAGE"], S(
        TAG["REQUEST_HEADER"], S(TAG["PROTOCOL_VERSION"], I(TAG["MAJOR"], 1), I(TAG["MINOR"], 1)),
        I(TAG["BATCH_COUNT"], 1)),
        S(TAG["BATCH_ITEM"], E(TAG["OPERATION"], 0x18), S(TAG["REQUEST_PAYLOAD"])))
    sess = None
    for attempt in range(3):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", k.port), timeout=10),
                            session=sess)
        s.sendall(query)
        assert find(_read_msg(s), TAG["RESULT_STATUS"]) == SUCCESS
        if attempt > 0:
            assert s.session_reused, "attempt %d was a full handshake" % attempt
        sess = s.session
        assert sess is not None
        s.close()  # no unwrap(): no close_notify, like most KMIP clients


def test_clients_vanishing_with_commits_in_flight(k):
    """Connections that send Creates and Activates and drop at once (RST,
    no reading) while their deferred commits are in flight: kmsd keeps
    serving, and the server stops sanitizer-clean (the module fixture checks
    the log at the end)."""
    uid = create_key(admin(k), "vanish-%s" % uuid.uuid4().hex[:8])
    msgs = _create_msg("vanish-%s" % uuid.uuid4().hex[:8]) + S(TAG["REQUEST_MESSAGE"], S(
        TAG["REQUEST_HEADER"], S(TAG["PROTOCOL_VERSION"], I(TAG["MAJOR"], 1), I(TAG["MINOR"], 1)),
        I(TAG["BATCH_COUNT"], 1)),
        S(TAG["BATCH_ITEM"], E(TAG["OPERATION"], 18), S(TAG["REQUEST_PAYLOAD"],
                                                          T(TAG["UID"], uid))))
    errors = []

    def worker():
        try:
            for _ in range(25):
                c = admin(k)
                c.sock.sendall(msgs * 3)
                # RST instead of FIN: SO_LINGER 0, then close without reading.
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[:3]
    # Still serving, and the writes that did commit are whole.
    c = admin(k)
    try:
        st, rs, p = c.request("Get", T(TAG["UID"], uid))
        assert st == SUCCESS, (st, rs)
        st, rs, p = c.request("GetAttributes", T(TAG["UID"], uid), T(TAG["ATTRIBUTE_NAME"], "State"))
        assert st == SUCCESS, (st, rs)
    finally:
        c.close()
