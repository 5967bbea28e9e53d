"""tests/interop/test_cluster_form.py: forming a cluster with the real
binaries (docs/cluster.md, "Forming a cluster").

- `kmsctl init --peer-listen`: the first node's directory (cluster id in the
  database, node certificate with the kmsd peer role chaining to the CA,
  replication section); without --peer-listen nothing of it; --force keeps
  the cluster id; the master key in a SoftHSM2 token instead of a file.
- three real kmsd processes on loopback formed with `cluster invite` and
  `cluster join`: one CA for every node's certificates, one cluster id,
  each node its own master key wrapping the same data-store keys,
  `cluster status` with every node connected, `cluster verify` exit 0;
  used, expired and forged tokens refused (and logged by the inviter);
  `cluster remove` closes the node's links and its certificate is refused
  on the peer port (a hand-made HELLO gets ERROR "removed"); a node whose
  master key is in a SoftHSM2 token.
"""
import base64
import json
import os
import re
import socket
import sqlite3
import ssl
import struct
import subprocess
import time

import pytest
import yaml

import kmsd_harness as H

PEER_ROLE_OID = "2.25.328670954439281658831151738066534397793"
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def kmsctl(*args, check=True, env=None):
    p = subprocess.run([H.kmsctl_bin(), *args], capture_output=True, text=True, timeout=120,
                       env=env)
    if check:
        assert p.returncode == 0, "kmsctl %s failed (%d):\n%s%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr)
    return p


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def meta(db, key):
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        con.close()
    if row is None:
        return None
    v = row[0]
    try:
        return v.decode() if isinstance(v, bytes) else v
    except UnicodeDecodeError:
        return v  # wrapped keys are bytes


def init_node(d, node_id="kms-a", extra=()):
    kport, pport = H.free_port(), H.free_port()
    args = ["init", "--dir", d, "--listen", "127.0.0.1:%d" % kport,
            "--peer-listen", "127.0.0.1:%d" % pport, *extra]
    if node_id:
        args += ["--node-id", node_id]
    return kmsctl(*args), kport, pport


def test_init_peer_listen_makes_first_node(tmp_path):
    d = str(tmp_path / "a")
    p, kport, pport = init_node(d)
    assert "cluster" in p.stdout and "cluster invite" in p.stdout
    conf = yaml.safe_load(open(os.path.join(d, "kmsd.yaml")))
    assert conf["node_id"] == "kms-a"
    r = conf["replication"]
    assert r["listen"] == "127.0.0.1:%d" % pport
    assert r["peers"] == []
    assert (r["cert"], r["key"], r["ca"], r["ca_key"]) == (
        "pki/node.crt", "pki/node.key", "pki/ca.crt", "pki/ca.key")
    # The node certificate: CN = node id, both TLS roles and the peer role,
    # issued by the cluster CA; served with the CA after it (a joining node
    # pins the CA by the digest in its token).
    node_crt = os.path.join(d, "pki", "node.crt")
    pem = open(node_crt).read()
    assert pem.count("BEGIN CERTIFICATE") == 2
    text = openssl("x509", "-in", node_crt, "-noout", "-subject", "-ext", "extendedKeyUsage")
    assert re.search(r"CN\s*=\s*kms-a", text)
    assert PEER_ROLE_OID in text and "TLS Web Server Authentication" in text \
        and "TLS Web Client Authentication" in text
    openssl("verify", "-CAfile", os.path.join(d, "pki", "ca.crt"), node_crt)
    second = pem[pem.index("-----END CERTIFICATE-----") + 26:]
    ca_fp = openssl("x509", "-in", os.path.join(d, "pki", "ca.crt"), "-noout", "-fingerprint",
                    "-sha256")
    chain_fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                              input=second, capture_output=True, text=True, check=True).stdout
    assert ca_fp == chain_fp
    assert os.stat(os.path.join(d, "pki", "node.key")).st_mode & 0o077 == 0
    # The server certificate has no peer role: a KMIP certificate never
    # opens a peer link.
    srv = openssl("x509", "-in", os.path.join(d, "pki", "server.crt"), "-noout", "-ext",
                  "extendedKeyUsage")
    assert PEER_ROLE_OID not in srv
    cid = meta(os.path.join(d, "kms.db"), "cluster_id")
    assert cid and re.fullmatch(r"[0-9a-f]{32}", cid)

    # --force keeps the database and with it the cluster id.
    kmsctl("init", "--dir", d, "--listen", "127.0.0.1:%d" % kport, "--peer-listen",
           "127.0.0.1:%d" % pport, "--node-id", "kms-a", "--force")
    assert meta(os.path.join(d, "kms.db"), "cluster_id") == cid


def test_init_without_peer_listen_is_a_single_node(tmp_path):
    d = str(tmp_path / "s")
    kmsctl("init", "--dir", d, "--listen", "127.0.0.1:%d" % H.free_port())
    conf = yaml.safe_load(open(os.path.join(d, "kmsd.yaml")))
    assert "replication" not in conf and "node_id" not in conf
    assert not os.path.exists(os.path.join(d, "pki", "node.crt"))
    assert meta(os.path.join(d, "kms.db"), "cluster_id") is None


def test_init_generated_node_id(tmp_path):
    d = str(tmp_path / "g")
    init_node(d, node_id=None)
    conf = yaml.safe_load(open(os.path.join(d, "kmsd.yaml")))
    assert re.fullmatch(r"[0-9a-f]{32}", conf["node_id"])
    subj = openssl("x509", "-in", os.path.join(d, "pki", "node.crt"), "-noout", "-subject")
    assert conf["node_id"] in subj


@pytest.mark.parametrize("args,msg", [
    (["--peer-listen", "nowhere"], "--peer-listen"),
    (["--peer-listen", "127.0.0.1:7000", "--node-id", "bad id"], "--node-id"),
    (["--peer-listen", "127.0.0.1:7000", "--node-id", "x" * 64], "--node-id"),
    (["--node-id", "kms-a"], "needs --peer-listen"),
    (["--hsm-token", "kmsd"], "--hsm-module"),
])
def test_init_refuses_bad_cluster_options(tmp_path, args, msg):
    d = str(tmp_path / "bad")
    p = kmsctl("init", "--dir", d, "--listen", "127.0.0.1:5999", *args, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert msg in p.stderr
    assert not os.path.exists(os.path.join(d, "kmsd.yaml"))


def softhsm_token(base, label):
    """A SoftHSM2 token `label` (PIN 4711) in its own directory: (its
    SOFTHSM2_CONF path, the PIN file)."""
    tok = base / ("softhsm-" + label)
    (tok / "tokens").mkdir(parents=True)
    conf = tok / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                    % (tok / "tokens"))
    pin = tok / "pin"
    pin.write_text("4711\n")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", "4711",
                    "--so-pin", "123456"], check=True, capture_output=True,
                   env=dict(os.environ, SOFTHSM2_CONF=str(conf)))
    return str(conf), pin


@pytest.mark.skipif(not os.path.exists(SOFTHSM), reason="SoftHSM2 not installed")
def test_init_master_key_in_pkcs11_token(tmp_path):
    conf, pin = softhsm_token(tmp_path, "kmsd-a")
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    d = str(tmp_path / "p")
    p = kmsctl("init", "--dir", d, "--listen", "127.0.0.1:%d" % H.free_port(), "--peer-listen",
               "127.0.0.1:%d" % H.free_port(), "--hsm-module", SOFTHSM, "--hsm-token", "kmsd-a",
               "--hsm-pin-file", str(pin), env=env)
    assert "PKCS#11 token 'kmsd-a'" in p.stdout
    assert not os.path.exists(os.path.join(d, "master.key"))
    c = yaml.safe_load(open(os.path.join(d, "kmsd.yaml")))
    assert c["hsm"] == {"provider": "pkcs11", "module": SOFTHSM, "token_label": "kmsd-a",
                        "pin_file": str(pin), "key_label": "kmsd-master"}
    # The key is in the token and usable: wrap/unwrap through kmsctl.
    chk = kmsctl("--config", os.path.join(d, "kmsd.yaml"), "hsm", "check", env=env)
    assert "round trip passed" in chk.stdout


# ------------------------------------------------------------------ a cluster
REPL_HELLO, REPL_HELLO_ACK, REPL_ERROR = 1, 2, 14
REPL_ERROR_REMOVED = 4
T_FRAME, T_VERSION, T_CLUSTER_ID, T_NODE_ID, T_WALL_MS = 0x545501, 0x545502, 0x545503, 0x545504, 0x545505
T_PEER_ADDR, T_KMIP_ADDR, T_ERROR_CODE, T_LAST_SEQ = 0x545507, 0x545508, 0x54553B, 0x54553D


wait_for = H.wait_for


def status(k):
    p = k.kmsctl("--json", "cluster", "status", check=False)
    assert p.returncode in (0, 1), p.stderr
    return {r["node"]: r for r in json.loads(p.stdout)}


def all_connected(k, n, caught_up=False):
    """k's status when at least n nodes (k included) are ok and linked both
    ways (and, with caught_up, have acknowledged all of k's changes)."""
    st = status(k)
    ok = [r for r in st.values() if r["state"] == "ok" and r["links"] in ("self", "in+out") and
          (not caught_up or r["lag_changes"] == 0)]
    return st if len(ok) >= n else None


def thread_names(pid):
    """The names (comm) of a process's threads."""
    names = []
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
            names.append(f.read().strip())
    return names


@pytest.fixture
def cluster3(tmp_path):
    nodes = H.form_cluster(tmp_path, 3)
    yield nodes
    for k in nodes:
        k.kill()


def hello(k, node_id, cluster_id):
    """A HELLO frame as node `node_id` of `cluster_id` would send it."""
    body = H.item(T_FRAME, H.STRUCT, [
        H.item(T_VERSION, H.INT, 1), H.item(T_CLUSTER_ID, H.TEXT, cluster_id),
        H.item(T_NODE_ID, H.TEXT, node_id), H.item(T_WALL_MS, H.LONG, int(time.time() * 1000)),
        H.item(T_PEER_ADDR, H.TEXT, ""), H.item(T_KMIP_ADDR, H.TEXT, ""),
        H.item(T_LAST_SEQ, H.LONG, 0)])
    return b"KR" + bytes([1, REPL_HELLO]) + struct.pack(">I", len(body)) + body


def peer_answer(target, cert_dir, node_id, cluster_id):
    """Connect to target's peer port with the node certificate in cert_dir,
    say HELLO, return (frame type, decoded body) of the answer, or None
    when the connection is closed without one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(target.ca)
    ctx.load_cert_chain(os.path.join(cert_dir, "pki", "node.crt"),
                        os.path.join(cert_dir, "pki", "node.key"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", target.peer_port), timeout=10))
    try:
        s.sendall(hello(target, node_id, cluster_id))
        hdr = H.recv_exact(s, 8)
        body = H.recv_exact(s, struct.unpack(">I", hdr[4:8])[0])
        return hdr[3], H.decode(body)
    except (ConnectionError, ssl.SSLError):
        return None
    finally:
        s.close()


def test_three_nodes_form_one_cluster(cluster3):
    a, b, c = cluster3
    # One CA: every node's server certificate chains to the first node's
    # CA, which every node holds (a vCenter that trusts it trusts them all).
    for k in (a, b, c):
        assert open(k.ca).read() == open(a.ca).read()
        openssl("verify", "-CAfile", a.ca, os.path.join(k.dir, "pki", "server.crt"))
        openssl("verify", "-CAfile", a.ca, os.path.join(k.dir, "pki", "node.crt"))
        subj = openssl("x509", "-in", os.path.join(k.dir, "pki", "node.crt"), "-noout", "-subject",
                       "-ext", "extendedKeyUsage")
        assert k.node_id in subj and PEER_ROLE_OID in subj
        # A KMIP client that trusts only that CA completes TLS with the node.
        ctx = ssl.create_default_context(cafile=a.ca)
        ctx.load_cert_chain(a.cert, a.key)
        with ctx.wrap_socket(socket.create_connection((k.host, k.port), timeout=10),
                             server_hostname="127.0.0.1") as s:
            assert s.version() == "TLSv1.3"
    # Only the first node holds the CA key; every node its own master key.
    assert os.path.exists(os.path.join(a.dir, "pki", "ca.key"))
    for k in (b, c):
        assert not os.path.exists(os.path.join(k.dir, "pki", "ca.key"))
        assert yaml.safe_load(open(k.conf_path))["replication"]["ca_key"] == ""
    keys = [open(os.path.join(k.dir, "master.key"), "rb").read() for k in (a, b, c)]
    assert len(set(keys)) == 3
    # The same data-store keys, wrapped under three different master keys.
    wrapped = [meta(os.path.join(k.dir, "kms.db"), "dsk.1") for k in (a, b, c)]
    assert all(wrapped) and len(set(wrapped)) == 3
    cid = meta(os.path.join(a.dir, "kms.db"), "cluster_id")
    assert all(meta(os.path.join(k.dir, "kms.db"), "cluster_id") == cid for k in (b, c))

    # Every node sees the others connected both ways; status names them all.
    st = wait_for(lambda: all_connected(a, 3, caught_up=True), what="3 connected nodes on a")
    assert set(st) == {"a", "b", "c"}
    assert st["a"]["self"] is True and st["b"]["peer_addr"] == "127.0.0.1:%d" % b.peer_port
    for r in (st["b"], st["c"]):
        assert r["lag_changes"] == 0 and r["last_contact_age_ms"] >= 0
        assert abs(r["clock_offset_ms"]) < 2000
    human = a.kmsctl("cluster", "status").stdout
    assert re.search(r"^b\s+127\.0\.0\.1:%d\s+in\+out" % b.peer_port, human, re.M), human
    wait_for(lambda: all_connected(b, 2) and all_connected(c, 2), what="b and c linked to a")
    # Every node has the worker threads its `threads` asks for, the joined
    # ones too: their replication thread applies the snapshot as soon as
    # the link is up, and libuv sizes its pool once, at the first work item.
    for k in (a, b, c):
        names = thread_names(k.pid)
        want = yaml.safe_load(open(k.conf_path)).get("threads", 32)
        assert names.count("kmsd-pool") == want, (k.node_id, sorted(set(names)))
        assert {"kmsd-repl", "kmsd-loop0", "kmsd-store-wr"} <= set(names), names
    # Nothing differs between nodes that hold nothing yet.
    p = a.kmsctl("cluster", "verify", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "identical: 3 node(s) compared" in p.stdout


def join(tmp_path, token, node):
    """`kmsctl cluster join` of a node `node` into tmp_path/node; the CompletedProcess."""
    return subprocess.run([H.kmsctl_bin(), "cluster", "join", token, "--dir", str(tmp_path / node),
                           "--listen", "127.0.0.1:%d" % H.free_port(), "--peer-listen",
                           "127.0.0.1:%d" % H.free_port(), "--node-id", node],
                          capture_output=True, text=True, timeout=60)


def test_join_tokens_are_one_time_and_checked(cluster3, tmp_path):
    a = cluster3[0]
    # A used token (the one b joined with is gone; make one and use it).
    tok = a.invite("--ttl", "10m")
    first = H.Kmsd(str(tmp_path / "d"), start=False, join=tok, node_id="d", client_of=a)
    assert os.path.exists(first.conf_path)
    p = join(tmp_path, tok, "e")
    assert p.returncode == 1
    assert re.search(r"refused by 127\.0\.0\.1:\d+: invite [0-9a-f]{16} was already used \(by node d\)",
                     p.stderr), p.stderr
    assert not os.path.exists(str(tmp_path / "e" / "kmsd.yaml"))
    a.wait_log(r"join refused for node 'e' from 127\.0\.0\.1:\d+: invite [0-9a-f]{16} was already used")

    # An expired one.
    tok = a.invite("--ttl", "1s")
    time.sleep(1.5)
    p = join(tmp_path, tok, "f")
    assert p.returncode == 1 and "expired" in p.stderr, p.stderr
    a.wait_log(r"join refused for node 'f' .*expired")

    # A wrong one: another secret for a real invite id.
    tok = a.invite()
    body = tok[len("kmsd-join-v1."):]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    i = raw.find(bytes.fromhex("54552E08"))  # SECRET, Byte String
    assert i > 0
    raw[i + 8] ^= 0xFF
    forged = "kmsd-join-v1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    p = join(tmp_path, forged, "g")
    assert p.returncode == 1 and "wrong secret" in p.stderr, p.stderr
    a.wait_log(r"join refused for node 'g' .*wrong secret")
    # ...and the real token still works after that attempt.
    H.Kmsd(str(tmp_path / "h"), start=False, join=tok, node_id="h", client_of=a)

    # A token that is not one at all never reaches the inviter.
    p = subprocess.run([H.kmsctl_bin(), "cluster", "join", "kmsd-join-v1.@@", "--dir",
                        str(tmp_path / "i"), "--listen", "127.0.0.1:1", "--peer-listen",
                        "127.0.0.1:2"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "damaged" in p.stderr


def test_remove_refuses_the_node_everywhere(cluster3):
    a, b, c = cluster3
    cid = meta(os.path.join(a.dir, "kms.db"), "cluster_id")
    wait_for(lambda: all_connected(a, 3), what="3 connected nodes")
    # Before: c's certificate is a peer's (HELLO_ACK).
    ans = peer_answer(a, c.dir, "c", cid)
    assert ans and ans[0] == REPL_HELLO_ACK, ans
    a.kmsctl("cluster", "remove", "c")
    # c's links close, its state says so, and its certificate is refused on
    # the peer port from then on (ERROR "removed"), while b's is not.
    st = wait_for(lambda: (lambda s: s if s["c"]["state"] == "removed" and s["c"]["links"] == "no"
                           else None)(status(a)), what="c removed and disconnected")
    assert st["b"]["state"] == "ok"
    ans = peer_answer(a, c.dir, "c", cid)
    assert ans is not None and ans[0] == REPL_ERROR, ans
    assert H.find_all(ans[1], T_ERROR_CODE) == [REPL_ERROR_REMOVED]
    ans = peer_answer(a, b.dir, "b", cid)
    assert ans and ans[0] == REPL_HELLO_ACK, ans
    c.wait_log(r"refused by the peer: node removed from the cluster")
    # Removing yourself, or a node that is not there, is refused.
    p = a.kmsctl("cluster", "remove", "a", check=False)
    assert p.returncode == 2 and "another node" in p.stderr
    p = a.kmsctl("cluster", "remove", "zz", check=False)
    assert p.returncode == 1 and "no node 'zz'" in p.stderr
    # A status with a removed node is still a healthy status.
    assert a.kmsctl("cluster", "status", check=False).returncode == 0


@pytest.mark.skipif(not os.path.exists(SOFTHSM), reason="SoftHSM2 not installed")
def test_join_with_master_key_in_pkcs11_token(tmp_path, monkeypatch):
    conf, pin = softhsm_token(tmp_path, "kmsd-b")
    monkeypatch.setenv("SOFTHSM2_CONF", conf)  # for kmsctl and kmsd, this test only
    a = H.Kmsd(str(tmp_path / "a"), peer=True, node_id="a")
    try:
        b = H.Kmsd(str(tmp_path / "b"), start=False, join=a.invite(), node_id="b", client_of=a,
                   setup_args=("--hsm-module", SOFTHSM, "--hsm-token", "kmsd-b", "--hsm-pin-file",
                               str(pin)))
        assert not os.path.exists(os.path.join(b.dir, "master.key"))
        assert yaml.safe_load(open(b.conf_path))["hsm"]["provider"] == "pkcs11"
        # The data-store key is wrapped under b's token key: it opens there.
        b.start()
        wait_for(lambda: all_connected(a, 2), what="a and b connected")
        b.stop()
    finally:
        a.kill()


# ------------------------------------------------------------ what replicates
def pykmip(k, certfile=None, keyfile=None):
    from kmip.pie.client import ProxyKmipClient
    c = ProxyKmipClient(hostname=k.host, port=k.port, cert=certfile or k.cert,
                        key=keyfile or k.key, ca=k.ca, ssl_version="PROTOCOL_TLS")
    c.open()
    return c


def fetch(k, uid, **kw):
    """(key bytes, sorted attributes) of uid through k, or None while absent."""
    from kmip.pie import exceptions as kx
    c = pykmip(k, **kw)
    try:
        obj = c.get(uid)
        attrs = c.get_attributes(uid)[1]
        return obj.value, sorted((a.attribute_name.value, str(a.attribute_value)) for a in attrs)
    except kx.KmipOperationFailure:
        return None
    finally:
        c.close()


def test_key_made_on_a_is_on_b_and_c(cluster3):
    from kmip import enums
    a, b, c = cluster3
    ca = pykmip(a)
    try:
        uid = ca.create(enums.CryptographicAlgorithm.AES, 256, name="vm-disk-1")
    finally:
        ca.close()
    want = fetch(a, uid)
    assert want and len(want[0]) == 32
    for k in (b, c):
        got = wait_for(lambda: fetch(k, uid), what="key %s on %s" % (uid, k.node_id))
        assert got[0] == want[0]
        # The attributes too, once the fetches' own changes (Fresh, ...) have
        # replicated as well.
        wait_for(lambda: fetch(k, uid)[1] == fetch(a, uid)[1], what="same attributes")
    # Every node holds the same objects.
    wait_for(lambda: a.kmsctl("cluster", "verify", check=False).returncode == 0,
             what="cluster verify exit 0")
    # b learnt c from the replicated node list and pushes to it too.
    wait_for(lambda: b.kmsctl("cluster", "verify", check=False).returncode == 0,
             what="cluster verify on b")
    assert "identical: 3 node(s) compared" in b.kmsctl("cluster", "verify").stdout


def test_tenants_and_clients_made_on_a_work_on_b(cluster3, tmp_path):
    from kmip import enums
    a, b, _ = cluster3
    a.kmsctl("tenant", "add", "acme")
    subprocess.run([H.kmsctl_bin(), "pki", "issue-client", "vc-acme", "--dir", a.dir], check=True,
                   capture_output=True, timeout=60)
    crt = os.path.join(a.dir, "pki", "vc-acme.crt")
    key = os.path.join(a.dir, "pki", "vc-acme.key")
    a.kmsctl("client", "add", "--tenant", "acme", "--cert", crt)
    # The tenant and the client are on b too...
    wait_for(lambda: "acme" in b.kmsctl("--json", "tenant", "list").stdout, what="tenant on b")
    wait_for(lambda: "vc-acme" in b.kmsctl("--json", "client", "list").stdout, what="client on b")
    # ...so the client's key made on a is served to it by b, and only to it.
    cl = pykmip(a, certfile=crt, keyfile=key)
    try:
        uid = cl.create(enums.CryptographicAlgorithm.AES, 256)
    finally:
        cl.close()
    got = wait_for(lambda: fetch(b, uid, certfile=crt, keyfile=key), what="acme's key via b")
    assert got == fetch(a, uid, certfile=crt, keyfile=key)


def test_verify_names_the_object_that_differs(cluster3):
    from kmip import enums
    a, b, c = cluster3
    ca = pykmip(a)
    try:
        uids = [ca.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(3)]
    finally:
        ca.close()
    for k in (b, c):
        for uid in uids:
            wait_for(lambda: fetch(k, uid), what="%s on %s" % (uid, k.node_id))
    wait_for(lambda: a.kmsctl("cluster", "verify", check=False).returncode == 0, what="identical")
    # Every push link has delivered once (a node's first contact with a
    # peer seeds it by snapshot, which would repair the row changed below).
    for k in (a, b, c):
        wait_for(lambda: all_connected(k, 3, caught_up=True), what="%s linked" % k.node_id)
    # Change one attribute row of one object on c behind kmsd's back.
    c.stop()
    con = sqlite3.connect(os.path.join(c.dir, "kms.db"))
    # Cryptographic Usage Mask Encrypt|Decrypt (0x0C) becomes Encrypt (0x04).
    n = con.execute("UPDATE attributes SET value = X'42000B02000000040000000400000000' "
                    "WHERE name = 'Cryptographic Usage Mask' AND obj_id = "
                    "(SELECT oid FROM objects WHERE id = ?)", (uids[1],)).rowcount
    con.commit()
    con.close()
    assert n == 1
    c.start()
    wait_for(lambda: all_connected(a, 3), what="c back")
    p = a.kmsctl("cluster", "verify", check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"object %s \(tenant default\): differs on c" % uids[1], p.stdout), p.stdout
    assert uids[0] not in p.stdout and uids[2] not in p.stdout
    js = json.loads(a.kmsctl("--json", "cluster", "verify", check=False).stdout)
    assert any(r["kind"] == "object" and r["object"] == uids[1] for r in js)
    assert [r["result"] for r in js if r["kind"] == "summary"] == ["different"]


def test_replication_metrics_count_shipping(tmp_path):
    """/metrics on the node that writes: the entities its push link
    shipped, taken from the change log's rows in memory (a peer that keeps
    up never needs a read of the store for new objects), and encoded; on
    the node that receives: its commits of the peer's frames, the frames
    they held, and none left waiting once it has the last key."""
    pytest.importorskip("prometheus_client.parser")
    from test_http import Https, families, http_conf, sample
    nodes = H.form_cluster(tmp_path, 2)
    try:
        a, b = nodes
        ports = []
        for k in (a, b):
            conf, port = http_conf()
            k.stop()
            k.configure(conf)
            k.start()
            ports.append(port)
        wait_for(lambda: all_connected(a, 2), what="a and b linked again")
        uids = []
        ca = pykmip(a)
        try:
            from kmip import enums
            for i in range(20):
                uids.append(ca.create(enums.CryptographicAlgorithm.AES, 256, name="m-%d" % i))
        finally:
            ca.close()
        wait_for(lambda: fetch(b, uids[-1]), what="the last key on b")
        f = families(Https(a, ports[0]).metrics())
        mem = sample(f, "kmsd_replication_shipped_entities_total", source="memory")
        enc = sample(f, "kmsd_replication_entity_encodings_total", how="encoded")
        assert mem >= 20, f.get(("kmsd_replication_shipped_entities_total",
                                 (("source", "store"),)))
        assert enc >= 20 and enc <= mem
        assert sample(f, "kmsd_replication_ship_batches_total", where="inline") + \
            sample(f, "kmsd_replication_ship_batches_total", where="pool") >= 1
        fb = families(Https(b, ports[1]).metrics())
        commits = sample(fb, "kmsd_replication_apply_commits_total")
        frames = sample(fb, "kmsd_replication_applied_frames_total")
        assert commits >= 1 and frames >= commits, (commits, frames)
        assert sample(fb, "kmsd_replication_apply_waiting_frames") == 0
    finally:
        H.stop_cluster(nodes)
