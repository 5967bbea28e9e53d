"""tests/interop/test_kmsctl_admin.py: kmsctl's admin commands end to end
against a running kmsd (its admin Unix socket, found through kmsd.yaml).

tenant add/list/remove, client add from a certificate file (fingerprint
cross-checked with the openssl CLI), from a CSR made with `openssl req`
(signed by kmsctl with the CA, then used for a real TLS + KMIP request),
from a user name + password file; list --json parsed; remove, after which
the removed client is refused on its very next request (same kmsd, no
restart); status --json; documented exit codes (1 refused, 2 usage, 3
unreachable).
"""
import json
import os
import subprocess
import uuid

import pytest

from test_tenants import (AUTH_NOT_SUCCESSFUL, FAILED, PY, SUCCESS, Kmsd, kmsctl, need_kmsd)


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    need_kmsd()
    srv = Kmsd(tmp_path_factory.mktemp("admin") / "kms")
    try:
        yield srv
    finally:
        problems = srv.stop()
    assert not problems, "%s\n%s" % (problems, open(srv.logpath).read()[-4000:])


def openssl(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def fingerprint(cert):
    out = openssl("x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256")
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def jctl(k, *args):
    p = k.ctl("--json", *args, check=0)
    return json.loads(p.stdout)


def test_status_json(k):
    st = jctl(k, "status")
    assert st["health"] == "ok"
    assert st["version"]
    assert st["store"] == "ok"
    assert st["audit"] == "ok"
    assert isinstance(st["objects"], int) and st["objects"] >= 0
    assert isinstance(st["uptime_s"], int)
    assert st["connections"] >= 0
    assert st["pid"] == k.proc.pid
    # The request counter moves with KMIP traffic.
    c = k.raw(k.pki / "client.crt", k.pki / "client.key")
    for _ in range(3):
        assert c.request("Locate")[0] == SUCCESS
    c.close()
    assert jctl(k, "status")["requests"] >= st["requests"] + 3 >= 3
    # Text form too.
    p = k.ctl("status", check=0)
    assert "health" in p.stdout and "ok" in p.stdout


def test_tenant_lifecycle(k):
    t = "t-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    k.ctl("tenant", "add", t, check=1)
    names = [r["tenant"] for r in jctl(k, "tenant", "list")]
    assert t in names
    k.ctl("tenant", "remove", t, check=0)
    assert t not in [r["tenant"] for r in jctl(k, "tenant", "list")]
    k.ctl("tenant", "remove", t, check=1)
    k.ctl("tenant", "frobnicate", check=2)
    assert k.ctl("tenant", "--help", check=0).stdout.startswith("usage:")


def test_tenant_with_objects_needs_force(k):
    t = "own-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("owner-" + t)
    k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
    c = k.raw(cert, key)
    from test_tenants import create_key
    create_key(c, "k-" + t)
    c.close()
    p = k.ctl("tenant", "remove", t, check=1)
    assert "--force" in p.stderr
    row = [r for r in jctl(k, "tenant", "list") if r["tenant"] == t][0]
    assert row["objects"] == 1 and row["clients"] == 1
    k.ctl("tenant", "remove", t, "--force", check=0)
    assert t not in [r["tenant"] for r in jctl(k, "tenant", "list")]


def test_client_from_certificate_then_removed_is_refused(k):
    t = "c-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("host-" + t)
    # Unregistered: refused.
    c = k.raw(cert, key)
    st, rs, _ = c.request("Locate")
    c.close()
    assert (st, rs) == (FAILED, AUTH_NOT_SUCCESSFUL)
    added = jctl(k, "client", "add", "--tenant", t, "--cert", str(cert))
    assert added["name"] == "host-" + t
    assert added["cert_sha256"] == fingerprint(cert)
    rows = jctl(k, "client", "list", "--tenant", t)
    assert [(r["name"], r["kind"], r["role"], r["cert_sha256"]) for r in rows] == [
        ("host-" + t, "cert", "client", fingerprint(cert))]
    # Registered: served; keep this connection open across the removal.
    c = k.raw(cert, key)
    st, rs, _ = c.request("Locate")
    assert st == SUCCESS, (st, rs)
    k.ctl("client", "remove", "host-" + t, check=0)
    st, rs, _ = c.request("Locate")
    c.close()
    assert (st, rs) == (FAILED, AUTH_NOT_SUCCESSFUL)
    assert jctl(k, "client", "list", "--tenant", t) == []
    k.ctl("client", "remove", "host-" + t, check=1)


def test_client_by_subject_cn(k):
    """--cn: any certificate under the client CA with that CN is the client,
    whatever its fingerprint (certificate renewal without re-registering);
    another CN stays refused."""
    t = "cn-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    added = jctl(k, "client", "add", "--tenant", t, "--cn", "vc-" + t)
    assert (added["name"], added["kind"], added["cert_sha256"]) == ("vc-" + t, "cert", "")
    fps = set()
    for i in range(2):  # two different certificates, same CN
        out = k.dir / ("cn%d" % i)
        out.mkdir()
        kmsctl("pki", "issue-client", "vc-" + t, "--dir", str(k.dir), "--out-dir", str(out), check=0)
        cert, key = out / ("vc-%s.crt" % t), out / ("vc-%s.key" % t)
        fps.add(fingerprint(cert))
        c = k.raw(cert, key)
        st, rs, _ = c.request("Locate")
        c.close()
        assert st == SUCCESS, (st, rs)
    assert len(fps) == 2
    cert, key = k.issue("other-" + t)
    c = k.raw(cert, key)
    st, rs, _ = c.request("Locate")
    c.close()
    assert (st, rs) == (FAILED, AUTH_NOT_SUCCESSFUL)
    # --cn and --name together, or --cn with a certificate, are usage errors.
    k.ctl("client", "add", "--tenant", t, "--cn", "x", "--name", "y", check=2)


def test_client_from_csr(k, tmp_path):
    t = "csr-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    key = tmp_path / "vc.key"
    csr = tmp_path / "vc.csr"
    out = tmp_path / "vc.crt"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", "/CN=vcenter-" + t)
    added = jctl(k, "client", "add", "--tenant", t, "--csr", str(csr), "--out", str(out))
    assert added["name"] == "vcenter-" + t
    assert added["cert_sha256"] == fingerprint(out)
    openssl("verify", "-CAfile", str(k.pki / "ca.crt"), str(out))
    c = k.raw(out, key)
    st, rs, _ = c.request("Locate")
    c.close()
    assert st == SUCCESS, (st, rs)


def test_client_with_password(k, tmp_path):
    t = "pw-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("pwhost-" + t)
    k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
    pwf = tmp_path / "pw"
    pwf.write_text("hunter2-" + t + "\n")
    k.ctl("client", "add", "--tenant", t, "--user", "u-" + t, "--password-file", str(pwf),
          check=0)
    # Password from standard input as well.
    k.ctl("client", "add", "--tenant", t, "--user", "v-" + t, input="other-pw\n", check=0)
    rows = {r["name"]: r for r in jctl(k, "client", "list", "--tenant", t)}
    assert rows["u-" + t]["kind"] == "password" and rows["u-" + t]["cert_sha256"] == ""
    assert "hunter2" not in json.dumps(rows) and "argon2" not in json.dumps(rows)
    c = k.raw(cert, key, "u-" + t, "hunter2-" + t)
    assert c.request("Locate")[0] == SUCCESS
    c.close()
    c = k.raw(cert, key, "v-" + t, "other-pw")
    assert c.request("Locate")[0] == SUCCESS
    c.close()
    c = k.raw(cert, key, "u-" + t, "hunter3")
    assert c.request("Locate")[:2] == (FAILED, AUTH_NOT_SUCCESSFUL)
    c.close()


def test_exit_codes(k, tmp_path):
    k.ctl("client", "add", "--tenant", "nosuch-tenant", "--user", "x", input="pw\n", check=1)
    k.ctl("client", "add", "--tenant", "x", check=2)
    k.ctl("client", "add", "--tenant", "x", "--cert", str(tmp_path / "missing.pem"), check=2)
    # A config whose admin socket nobody listens on: unreachable.
    conf = tmp_path / "other.yaml"
    conf.write_text("admin:\n  socket: %s\n" % (tmp_path / "none.sock"))
    p = kmsctl("--config", str(conf), "status", check=3)
    assert "cannot reach kmsd" in p.stderr
    kmsctl("--config", str(tmp_path / "nope.yaml"), "status", check=3)
    for cmd in ("status", "tenant", "client", "audit"):
        assert kmsctl(cmd, "--help", check=0).stdout.startswith("usage:")


def test_admin_socket_mode(k):
    st = os.stat(k.dir / "admin.sock")
    assert oct(st.st_mode & 0o777) == oct(0o600)


def test_key_commands(k):
    name = "demo-%s" % uuid.uuid4().hex[:8]
    kid = k.ctl("key", "create", "--name", name, check=0).stdout.strip()
    assert len(kid) == 36
    rows = json.loads(k.ctl("--json", "key", "list", "--name", name, check=0).stdout)
    assert rows == [{"id": kid, "name": name, "type": "Symmetric Key", "algorithm": "AES",
                     "length": 256, "state": "Pre-Active"}]
    shown = json.loads(k.ctl("--json", "key", "show", kid, check=0).stdout)
    attrs = {a["name"]: a["value"] for a in shown["attributes"]}
    assert attrs["State"] == "Pre-Active" and attrs["Cryptographic Length"] == 256
    assert "Key Material" not in k.ctl("key", "show", kid, check=0).stdout
    k.ctl("key", "activate", kid, check=0)
    k.ctl("key", "revoke", kid, "--reason", "compromise", check=0)
    state = {a["name"]: a["value"] for a in json.loads(
        k.ctl("--json", "key", "show", kid, check=0).stdout)["attributes"]}["State"]
    assert state == "Compromised"
    k.ctl("key", "destroy", kid, check=0)
    p = k.ctl("key", "show", str(uuid.uuid4()), check=1)
    assert "Item Not Found" in p.stderr
    k.ctl("key", "revoke", kid, "--reason", "bogus", check=2)
    k.ctl("key", "show", check=2)
    k.ctl("key", "list", "--server", "127.0.0.1:1", check=3)


def test_key_commands_respect_tenants(k):
    """kmsctl key with a tenant client's certificate sees only that tenant."""
    t = "kt-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("keyuser-" + t)
    k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
    admin_key = k.ctl("key", "create", "--name", "admin-" + t, check=0).stdout.strip()
    mine = k.ctl("key", "create", "--name", "mine-" + t, "--cert", str(cert), "--key", str(key),
                 check=0).stdout.strip()
    ids = [r["id"] for r in json.loads(k.ctl("--json", "key", "list", "--cert", str(cert),
                                             "--key", str(key), check=0).stdout)]
    assert ids == [mine]
    p = k.ctl("key", "destroy", admin_key, "--cert", str(cert), "--key", str(key), check=1)
    assert "Item Not Found" in p.stderr
    k.ctl("key", "show", admin_key, check=0)


def pykmip_get_hex(srv, uid):
    script = (
        "from kmip.pie.client import ProxyKmipClient\n"
        "c = ProxyKmipClient(hostname='127.0.0.1', port=%d, cert=%r, key=%r, ca=%r,\n"
        "                    config_file='/dev/null')\n"
        "c.open()\n"
        "print(c.get(%r).value.hex())\n"
        "c.close()\n" % (srv.port, str(srv.pki / "client.crt"), str(srv.pki / "client.key"),
                         str(srv.pki / "ca.crt"), uid))
    p = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.strip().splitlines()[-1]


def test_backup_restores_on_another_master_key(k, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backup")
    kid = k.ctl("key", "create", "--name", "backed-up", check=0).stdout.strip()
    material = pykmip_get_hex(k, kid)
    pw = tmp / "pass"
    pw.write_text("correct horse battery\n")
    out = tmp / "kms.bak"
    res = json.loads(k.ctl("--json", "backup", "--out", str(out), "--passphrase-file", str(pw),
                           check=0).stdout)
    assert res["objects"] >= 1
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o600)
    blob = out.read_bytes()
    assert blob.startswith(b"KMSDBAK1")
    assert bytes.fromhex(material) not in blob  # re-encrypted, not in clear
    k.ctl("backup", "--out", str(out), "--passphrase-file", str(pw), check=2)  # no overwrite
    keyf = tmp / "bk.key"
    keyf.write_text(os.urandom(32).hex() + "\n")
    out2 = tmp / "kms2.bak"
    k.ctl("backup", "--out", str(out2), "--key-file", str(keyf), check=0)

    # A second server with its own master key.
    other = Kmsd(tmp / "other")
    try:
        assert (other.dir / "master.key").read_bytes() != (k.dir / "master.key").read_bytes()
        wrong = tmp / "wrong"
        wrong.write_text("not the passphrase\n")
        p = other.ctl("restore", "--in", str(out), "--passphrase-file", str(wrong), check=1)
        assert "wrong passphrase" in p.stderr
        bad = tmp / "tampered.bak"
        b = bytearray(blob)
        b[len(b) // 2] ^= 0x01
        bad.write_bytes(bytes(b))
        other.ctl("restore", "--in", str(bad), "--passphrase-file", str(pw), check=1)
        assert json.loads(other.ctl("--json", "status", check=0).stdout)["objects"] == 0
        other.ctl("restore", "--in", str(out2), "--passphrase-file", str(pw), check=1)
        res = json.loads(other.ctl("--json", "restore", "--in", str(out), "--passphrase-file",
                                   str(pw), check=0).stdout)
        assert res["objects"] == json.loads(k.ctl("--json", "status", check=0).stdout)["objects"]
        assert pykmip_get_hex(other, kid) == material
        # Tenants came along; a second restore is refused (not empty any more).
        assert {r["tenant"] for r in jctl(k, "tenant", "list")} <= \
            {r["tenant"] for r in jctl(other, "tenant", "list")}
        other.ctl("restore", "--in", str(out), "--passphrase-file", str(pw), check=1)
    finally:
        problems = other.stop()
    assert not problems, problems
    # The key-file backup restores too.
    third = Kmsd(tmp / "third")
    try:
        third.ctl("restore", "--in", str(out2), "--key-file", str(keyf), check=0)
        assert pykmip_get_hex(third, kid) == material
    finally:
        problems = third.stop()
    assert not problems, problems
