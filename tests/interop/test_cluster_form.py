"""tests/interop/test_cluster_form.py: forming a cluster with the real
binaries (docs/cluster.md, "Forming a cluster").

- `kmsctl init --peer-listen`: the first node's directory (cluster id in the
  database, node certificate with the kmsd peer role chaining to the CA,
  replication section); without --peer-listen nothing of it; --force keeps
  the cluster id; the master key in a SoftHSM2 token instead of a file.
"""
import os
import re
import sqlite3
import subprocess

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
    return v.decode() if isinstance(v, bytes) else v


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


@pytest.mark.skipif(not os.path.exists(SOFTHSM), reason="SoftHSM2 not installed")
def test_init_master_key_in_pkcs11_token(tmp_path):
    tok = tmp_path / "softhsm"
    (tok / "tokens").mkdir(parents=True)
    conf = tok / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                    % (tok / "tokens"))
    pin = tok / "pin"
    pin.write_text("4711\n")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "kmsd-a", "--pin", "4711",
                    "--so-pin", "123456"], check=True, capture_output=True, env=env)
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
