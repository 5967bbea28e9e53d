"""tests/interop/test_audit.py: kmsd's audit log from the outside.

Runs KMIP operations (PyKMIP and raw TTLV) and admin commands against a
real kmsd, then checks its audit file: one JSON line per operation with
identity, tenant, address, operation, object id and result; no key
material; `kmsctl audit verify` accepts the chain and its last hash is the
one kmsd reports (`kmsctl audit status`). Then tampers with a copy: an
edited, a removed and an inserted line are each found, with the right
FILE:LINE, and exit status 1.
"""
import hashlib
import json
import shutil
import subprocess
import uuid

import pytest

from test_tenants import (PY, SUCCESS, TAG, Kmsd, T, create_key, kmsctl, need_kmsd)


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    need_kmsd()
    srv = Kmsd(tmp_path_factory.mktemp("audit") / "kms")
    try:
        yield srv
    finally:
        problems = srv.stop()
    assert not problems, "%s\n%s" % (problems, open(srv.logpath).read()[-4000:])


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def settle(k):
    """audit status flushes the writer; returns kmsd's view of the chain."""
    return json.loads(k.ctl("--json", "audit", "status", check=0).stdout)


def test_operations_are_recorded_and_chain_verifies(k):
    t = "aud-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("auditor-" + t)
    k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
    c = k.raw(cert, key)
    uid = create_key(c, "audited-" + t)
    st, rs, p = c.request("Get", T(TAG["UID"], uid))
    assert st == SUCCESS
    c.close()
    # A Get by PyKMIP as the admin identity too.
    script = (
        "from kmip.pie.client import ProxyKmipClient\n"
        "from kmip import enums\n"
        "c = ProxyKmipClient(hostname='127.0.0.1', port=%d, cert=%r, key=%r, ca=%r,\n"
        "                    config_file='/dev/null')\n"
        "c.open()\n"
        "uid = c.create(enums.CryptographicAlgorithm.AES, 256)\n"
        "print(c.get(uid).value.hex())\n"
        "c.close()\n" % (k.port, str(k.pki / "client.crt"), str(k.pki / "client.key"),
                         str(k.pki / "ca.crt")))
    r = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    admin_key_hex = r.stdout.strip().splitlines()[-1]
    assert len(admin_key_hex) == 64

    status = settle(k)
    path = k.dir / "audit.log"
    recs = records(path)
    # The audit.status command is itself audited, right after the state it reported.
    assert status["enabled"] is True and recs[-1]["operation"] == "audit.status"
    assert status["last_seq"] == recs[-1]["seq"] - 1
    assert status["last_hash"] == recs[-1]["prev"]
    mine = [x for x in recs if x.get("kind") == "kmip" and x.get("tenant") == t]
    ops = [x["operation"] for x in mine]
    assert "Create" in ops and "Get" in ops, ops
    get = [x for x in mine if x["operation"] == "Get"][0]
    assert get["identity"] == "auditor-" + t
    assert get["object"] == uid
    assert get["result"] == "Success"
    assert get["address"].startswith("127.0.0.1:")
    admin_ops = [x for x in recs if x.get("kind") == "admin"]
    assert any(x["operation"] == "tenant.add" and x["tenant"] == t for x in admin_ops)
    assert any(x["operation"] == "client.add" for x in admin_ops)
    # No key material anywhere in the log.
    text = path.read_text()
    assert admin_key_hex not in text and admin_key_hex.upper() not in text
    # The chain verifies, and ends where kmsd says it does.
    out = json.loads(kmsctl("--json", "audit", "verify", str(path), check=0).stdout)
    assert out["ok"] is True and out["lines"] == len(recs)
    last_line = path.read_bytes().rstrip(b"\n").split(b"\n")[-1]
    assert out["last_hash"] == hashlib.sha256(last_line).hexdigest()


def test_refused_requests_are_recorded(k):
    cert, key = k.issue("nobody-%s" % uuid.uuid4().hex[:6])
    c = k.raw(cert, key)
    try:
        c.request("Locate")
    except Exception:
        pass
    c.close()
    settle(k)
    recs = records(k.dir / "audit.log")
    assert any(x.get("kind") == "kmip" and x["result"] != "Success" and
               x["reason"] == "Authentication Not Successful" for x in recs)


def tampered(k, tmp_path, fn):
    settle(k)
    dst = tmp_path / ("audit-%s.log" % uuid.uuid4().hex[:6])
    shutil.copy(k.dir / "audit.log", dst)
    lines = dst.read_text().splitlines(keepends=True)
    assert len(lines) >= 6
    dst.write_text("".join(fn(lines)))
    p = kmsctl("audit", "verify", str(dst))
    return dst, p


def test_edit_detected(k, tmp_path):
    def edit(lines):
        rec = json.loads(lines[2])
        rec["result"] = "Success" if rec["result"] != "Success" else "Operation Failed"
        # Re-serialise with the original field order and prev: only content changes.
        lines[2] = json.dumps(rec, separators=(",", ":")) + "\n"
        return lines
    dst, p = tampered(k, tmp_path, edit)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "%s:3:" % dst in p.stderr


def test_removed_line_detected(k, tmp_path):
    dst, p = tampered(k, tmp_path, lambda lines: lines[:3] + lines[4:])
    assert p.returncode == 1
    assert "%s:4:" % dst in p.stderr


def test_inserted_line_detected(k, tmp_path):
    dst, p = tampered(k, tmp_path, lambda lines: lines[:2] + [lines[1]] + lines[2:])
    assert p.returncode == 1
    assert "%s:3:" % dst in p.stderr


def test_intact_copy_verifies(k, tmp_path):
    dst, p = tampered(k, tmp_path, lambda lines: lines)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok:")
