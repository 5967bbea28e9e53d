"""tests/interop/test_cluster_failover.py: clients keep being served when a
node of three stops, loses its HSM or restarts (docs/cluster.md, "Tests").

Three kmsd processes formed with `kmsctl init --peer-listen` and `cluster
join`, on 127.0.0.1, 127.0.0.2 and 127.0.0.3 sharing one KMIP port, and a
PyKMIP client configured as an operator would: one comma-separated host
list, one port, a 5 s timeout. The first node's master key is in a SoftHSM2
token of its own.

- a hung node: A is SIGSTOPed; a client opening afterwards waits at most
  its timeout for A and is served by B; A, continued, converges (cluster
  verify exits 0) and holds the key made meanwhile;
- the HSM gone on one node: A's token removed closes A's KMIP listener
  (connect refused at once) while B and C serve the same client host
  list; the token back, A re-opens and serves the keys made meanwhile;
- a rolling restart of all three nodes under load: clients that retry an
  operation on the next server (PyKMIP's host list) never see it fail;
- refused on the peer port: a KMIP client certificate (no peer role), a
  node certificate from another CA, garbage after the handshake, a frame
  header above replication.max_frame, and a connection without a
  certificate that sends anything but JOIN_REQ; each is logged and the
  node's memory does not grow. (A removed node's certificate: see
  test_cluster_form.py.)
"""
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

import kmsd_harness as H
from kmsd_harness import wait_for
from test_cluster_certs import issue
from test_cluster_form import hello, meta
from test_cluster_ready import refused
from test_hsm_pkcs11 import MODULE, Token

pytestmark = pytest.mark.skipif(not os.path.exists(MODULE), reason="SoftHSM2 not installed")

TIMEOUT = 5
# Small limits: a frame cap the oversized-frame test can exceed cheaply.
OVERRIDES = {"log": {"level": "info"}, "replication": {"max_frame": "1MiB"}}


def verified(k):
    return k.kmsctl("cluster", "verify", check=False).returncode == 0


def all_ok(k, n=3):
    p = k.kmsctl("--json", "cluster", "status", check=False)
    rows = json.loads(p.stdout) if p.stdout.strip() else []
    return sum(1 for r in rows if r["state"] == "ok" and r["links"] in ("self", "in+out")) >= n


def formed(nodes):
    """Every node sees every node ok and linked both ways, and serves.
    A node whose links have just come up may still be catching up on the
    tail a late link sends (a node learns a newer member from the node list
    within seconds), and keeps its KMIP listener closed until it has, plus
    up to one readiness period (250 ms): give that time to pass before a
    test relies on every listener."""
    if not all(all_ok(k, len(nodes)) for k in nodes):
        return False
    time.sleep(1.0)
    return all(not refused(k) for k in nodes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("failover")
    saved = os.environ.get("SOFTHSM2_CONF")
    token = Token(base)  # sets SOFTHSM2_CONF for softhsm2-util; node a only keeps it
    if saved is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = saved
    hsm = ("--hsm-module", MODULE, "--hsm-token", "kmsd", "--hsm-pin-file", token.pin_file)
    with H.running_cluster(base, 3, OVERRIDES, shared_port=True, node_opts={
            "a": {"env": {"SOFTHSM2_CONF": token.conf}, "setup_args": hsm}}) as nodes:
        nodes[0].token = token
        try:
            wait_for(lambda: formed(nodes), what="three nodes linked")
            yield nodes
        finally:
            for k in nodes:
                if k.running():
                    os.kill(k.pid, signal.SIGCONT)


def served_by(client, nodes):
    """The node a PyKMIP client is connected to."""
    return next(k for k in nodes if k.host == client.proxy.host)


def test_hung_node_is_skipped_within_the_timeout(cluster, tmp_path):
    from kmip import enums
    a, b, c = cluster
    assert a.config()["hsm"]["provider"] == "pkcs11"
    os.kill(a.pid, signal.SIGSTOP)
    try:
        t0 = time.time()
        cl = H.pykmip_failover(cluster, tmp_path, timeout=TIMEOUT)
        try:
            uid = cl.create(enums.CryptographicAlgorithm.AES, 256)
            value = cl.get(uid).value
            took = time.time() - t0
            assert served_by(cl, cluster) is b
        finally:
            cl.close()
        # A's TCP backlog accepted the connection, its TLS handshake never
        # came: the client gave A its timeout and no more, then B served.
        assert TIMEOUT - 0.5 <= took < TIMEOUT + 3, took
        wait_for(lambda: H.fetch_key(c, uid) == value, what="key on c")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    # A continued converges: it gets the key and nothing differs.
    wait_for(lambda: H.fetch_key(a, uid) == value, what="key on a after SIGCONT")
    wait_for(lambda: verified(a), what="cluster verify exit 0 on a")


def test_hsm_removed_on_one_node(cluster, tmp_path):
    from kmip import enums
    a, b, c = cluster
    log_at = len(a.log_text())
    a.token.remove()
    try:
        wait_for(lambda: refused(a), timeout=5, step=0.05, what="a's listener closed")
        # The same host list: A refuses at once, B serves, no timeout spent.
        t0 = time.time()
        cl = H.pykmip_failover(cluster, tmp_path, timeout=TIMEOUT)
        try:
            uid = cl.create(enums.CryptographicAlgorithm.AES, 256)
            value = cl.get(uid).value
            assert served_by(cl, cluster) is b
        finally:
            cl.close()
        assert time.time() - t0 < 2.5
        assert refused(a)
        wait_for(lambda: H.fetch_key(c, uid) == value, what="key on c")
    finally:
        a.token.restore()
    wait_for(lambda: not refused(a), timeout=15, what="a's listener re-opened")
    # A serves the key made while it was out (replicated meanwhile or now).
    wait_for(lambda: H.fetch_key(a, uid) == value, what="key on a")
    log = a.log_text()[log_at:]
    assert log.count("not ready: HSM unavailable: KMIP listener closed") == 1, log[-3000:]
    assert log.count("ready: serving keys again") == 1, log[-3000:]
    wait_for(lambda: verified(a), what="cluster verify exit 0")


class RetryingClient:
    """What a KMIP client with several servers does (vCenter, PyKMIP's host
    list): an operation that fails on the connection it has is tried again
    on a new connection, which PyKMIP opens to the first host that
    answers. Counts operations that failed on every try."""

    def __init__(self, nodes, workdir, tries=3):
        self.nodes, self.workdir, self.tries = nodes, workdir, tries
        self.cl = None
        self.retries = 0
        self.failures = []

    def call(self, fn):
        last = None
        for _ in range(self.tries):
            try:
                if self.cl is None:
                    self.cl = H.pykmip_failover(self.nodes, self.workdir, timeout=TIMEOUT)
                return fn(self.cl)
            except Exception as e:  # connection closed, refused, timed out
                last = e
                self.retries += 1
                self.close()
                time.sleep(0.1)
        self.failures.append(repr(last))
        return None

    def close(self):
        if self.cl is not None:
            try:
                self.cl.close()
            except Exception:
                pass
            self.cl = None


def test_rolling_restart_under_load(cluster, tmp_path):
    from kmip import enums
    a, b, c = cluster
    seed = RetryingClient(cluster, tmp_path)
    keys = {}
    for _ in range(8):
        uid = seed.call(lambda cl: cl.create(enums.CryptographicAlgorithm.AES, 256))
        keys[uid] = seed.call(lambda cl, u=uid: cl.get(u).value)
    seed.close()
    wait_for(lambda: verified(a), what="seed keys everywhere")

    stop = threading.Event()
    clients = [RetryingClient(cluster, tmp_path) for _ in range(4)]
    made = []
    ops = [0]

    def load(rc, i):
        n = 0
        while not stop.is_set():
            uid = list(keys)[(i + n) % len(keys)]
            got = rc.call(lambda cl: cl.get(uid).value)
            assert got is None or got == keys[uid]
            new = rc.call(lambda cl: cl.create(enums.CryptographicAlgorithm.AES, 256))
            if new:
                made.append(new)
            n += 2
        ops[0] += n
        rc.close()

    threads = [threading.Thread(target=load, args=(rc, i)) for i, rc in enumerate(clients)]
    for t in threads:
        t.start()
    try:
        for k in cluster:
            time.sleep(1.0)
            k.stop()
            time.sleep(0.5)  # clients fail over while it is down
            k.start()
            wait_for(lambda: all_ok(k), what="%s back and linked" % k.node_id)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    failures = [f for rc in clients for f in rc.failures]
    assert failures == [], failures
    retries = sum(rc.retries for rc in clients)
    H.report("rolling restart: %d operations, %d retried on the next server, %d keys made"
          % (ops[0], retries, len(made)))
    assert retries > 0  # the restarts did interrupt connections
    assert ops[0] > 50
    # Every key made during the restarts is on every node.
    wait_for(lambda: verified(a), timeout=60, what="cluster verify exit 0 after the restarts")
    for uid in made[:: max(1, len(made) // 10)]:
        assert all(H.fetch_key(k, uid) for k in cluster), uid


# ------------------------------------------------------------ the peer port
def peer_tls(k, cert=None, key=None, ca=None):
    """A TLS 1.3 connection to k's peer port (with cert/key when given);
    raises ssl.SSLError when the handshake fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca or k.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx.wrap_socket(socket.create_connection((k.host, k.peer_port), timeout=10))


def answer_or_close(s, data):
    """Send data; return the frame type of the answer, or None when the
    connection was closed (or reset) without one."""
    try:
        s.sendall(data)
        hdr = H.recv_exact(s, 8)
        assert hdr[:2] == b"KR", hdr
        H.recv_exact(s, struct.unpack(">I", hdr[4:8])[0])
        return hdr[3]
    except (ConnectionError, ssl.SSLError, OSError):
        return None
    finally:
        s.close()


REPL_ERROR = 14


def other_ca(d):
    """A CA that is not the cluster's, and a node certificate with the peer
    role issued by it (CN b, as if it were node b)."""
    ca, ca_key = os.path.join(str(d), "other-ca.crt"), os.path.join(str(d), "other-ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-subj",
                    "/CN=other CA", "-days", "1", "-out", ca], check=True, capture_output=True)
    return issue(d, ca, ca_key, "b", peer_role=True)


def test_refused_on_the_peer_port(cluster, tmp_path):
    a, b, c = cluster
    rss0 = a.rss_kb()
    log_at = len(a.log_text())
    node_crt, node_key = (os.path.join(c.dir, "pki", n) for n in ("node.crt", "node.key"))

    # A KMIP client certificate of the same CA: no peer role.
    s = peer_tls(a, a.cert, a.key)
    assert answer_or_close(s, b"KR\x01\x01\x00\x00\x00\x00") in (None, REPL_ERROR)
    a.wait_log(r"WARN repl: link \S+ refused: .*no kmsd peer role", start=log_at)

    # A node certificate (peer role, CN b) from another CA: the handshake
    # itself fails.
    crt, key = other_ca(tmp_path)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        s = peer_tls(a, crt, key)
        s.sendall(b"KR")
        s.recv(1)
    a.wait_log(r"WARN repl: link \S+: TLS handshake failed", start=log_at)

    # Garbage after a good handshake with a real node certificate.
    s = peer_tls(a, node_crt, node_key)
    assert answer_or_close(s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") in (None, REPL_ERROR)
    a.wait_log(r"WARN repl: link \S+: bad frame: not a replication frame header", start=log_at)

    # A frame header announcing more than max_frame (1 MiB here), then
    # bytes: refused from the header alone.
    s = peer_tls(a, node_crt, node_key)
    big = b"KR\x01\x03" + struct.pack(">I", 512 * 1024 * 1024)
    assert answer_or_close(s, big + b"\0" * 65536) in (None, REPL_ERROR)
    a.wait_log(r"WARN repl: link \S+: bad frame: 536870912 bytes above max_frame 1048576",
               start=log_at)
    s = peer_tls(a, node_crt, node_key)
    assert answer_or_close(s, b"KR\x01\x03" + struct.pack(">I", 2 * 1024 * 1024)) \
        in (None, REPL_ERROR)
    a.wait_log(r"bad frame: 2097152 bytes above max_frame", start=log_at)

    # No certificate: only JOIN_REQ is allowed; a well-formed HELLO of a
    # member is refused with an ERROR frame.
    s = peer_tls(a)
    cid = meta(os.path.join(a.dir, "kms.db"), "cluster_id")
    assert answer_or_close(s, hello(a, "b", cid)) == REPL_ERROR
    a.wait_log(r"WARN repl: link \S+ refused: no certificate and not a JOIN_REQ", start=log_at)

    # The node still serves its peers and did not grow.
    wait_for(lambda: all_ok(a), what="links still up")
    assert a.rss_kb() - rss0 < a.rss_slack_kb(20000)
