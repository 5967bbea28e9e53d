"""tests/interop/test_kmsctl_client_disable.py: `kmsctl client disable` and
`client enable` against a running kmsd, and across a two-node cluster.

A certificate client and a password client, each with a connection open
and served, are disabled: the very next request on those same connections
is refused, and the refusal (the whole Batch Item) is the one an
unregistered certificate and an unknown user get, so nothing tells a
disabled client from an unknown one. `client list --json` shows the state,
when and why; the audit log names the client and the reason. Enabled
again, the same connections are served with the same role, and the key the
client made before is still there. The text table of `client list` has
the state columns too. The last enabled admin cannot be
disabled. In a cluster, a client disabled on node a is refused by node b
at its next request (on a connection opened before), and served again
after it is enabled on a. Every wait is on an observable condition.
"""
import json
import uuid

import kmsd_harness as H
from test_kmsctl_admin import jctl, k  # noqa: F401 (k: the module's kmsd fixture)
from test_tenants import (AUTH_NOT_SUCCESSFUL, FAILED, SUCCESS, TAG, RawKmip, T, create_key, dec,
                          find, need_kmsd)


class Conn(RawKmip):
    """RawKmip that also keeps the last answer's Batch Item as decoded
    (a tree of (tag, type, value): equal trees are equal bytes)."""

    got = b""

    def _recv(self, n):
        b = super()._recv(n)
        self.got += b
        return b

    def item(self, op, *payload):
        self.got = b""
        st, rs, _ = self.request(op, *payload)
        return (st, rs), find(dec(self.got)[0][2], TAG["BATCH_ITEM"])


def rows(k, tenant):
    return {r["name"]: r for r in jctl(k, "client", "list", "--tenant", tenant)}


def test_disabled_is_refused_like_unknown_then_enabled(k):
    t = "d-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("host-" + t)
    k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
    pwf = k.dir / ("%s.pw" % t)
    pwf.write_text("pw-" + t + "\n")
    k.ctl("client", "add", "--tenant", t, "--user", "u-" + t, "--password-file", str(pwf),
          check=0)
    stranger, skey = k.issue("stranger-" + t)

    by_cert = Conn(k.port, cert, key, k.pki / "ca.crt")
    by_pw = Conn(k.port, cert, key, k.pki / "ca.crt", "u-" + t, "pw-" + t)
    unknown_cert = Conn(k.port, stranger, skey, k.pki / "ca.crt")
    unknown_user = Conn(k.port, cert, key, k.pki / "ca.crt", "nobody-" + t, "pw-" + t)
    try:
        uid = create_key(by_cert, "key-" + t)
        assert by_pw.item("Locate")[0][0] == SUCCESS
        refused_cert = unknown_cert.item("Locate")
        refused_user = unknown_user.item("Locate")
        assert refused_cert[0] == (FAILED, AUTH_NOT_SUCCESSFUL)
        assert refused_user == refused_cert

        k.ctl("client", "disable", "u-" + t, check=0)
        out = k.ctl("client", "disable", "host-" + t, "--reason", "vCenter decommissioned",
                    check=0).stdout
        assert "disabled" in out
        # The next request on each open connection: the unknown's answer.
        assert by_cert.item("Locate") == refused_cert
        assert by_pw.item("Locate") == refused_cert
        # A new connection too.
        again = Conn(k.port, cert, key, k.pki / "ca.crt")
        assert again.item("Locate") == refused_cert
        again.close()

        r = rows(k, t)
        assert r["host-" + t]["state"] == "disabled"
        assert r["host-" + t]["disabled_reason"] == "vCenter decommissioned"
        assert isinstance(r["host-" + t]["disabled_at"], int) and r["host-" + t]["disabled_at"] > 0
        assert r["u-" + t]["state"] == "disabled" and r["u-" + t]["disabled_reason"] == ""
        assert r["host-" + t]["role"] == "client"
        # The text table has a column for every field some row has (the
        # first row, an enabled client, has no disabled_reason).
        k.ctl("client", "add", "--tenant", t, "--cn", "a-" + t, check=0)
        lines = k.ctl("client", "list", "--tenant", t, check=0).stdout.splitlines()
        head = lines[0].split("\t")
        table = {ln.split("\t")[0]: dict(zip(head, ln.split("\t"))) for ln in lines[1:]}
        assert table["host-" + t]["disabled_reason"] == "vCenter decommissioned"
        assert table["u-" + t]["state"] == "disabled"
        assert lines[1].startswith("a-" + t) and table["a-" + t]["disabled_reason"] == ""
        # Disabling again changes nothing (not the reason either).
        k.ctl("client", "disable", "host-" + t, "--reason", "other", check=0)
        assert rows(k, t)["host-" + t]["disabled_reason"] == "vCenter decommissioned"
        audit = [json.loads(line) for line in open(k.dir / "audit.log")]
        dis = [a for a in audit if a.get("operation") == "client.disable"
               and a.get("object") == "host-" + t]
        assert dis and dis[0]["reason"] == "vCenter decommissioned"
        assert dis[0]["tenant"] == t and dis[0]["result"] == "ok"

        k.ctl("client", "enable", "host-" + t, check=0)
        k.ctl("client", "enable", "u-" + t, check=0)
        r = rows(k, t)
        assert r["host-" + t]["state"] == "enabled" and "disabled_reason" not in r["host-" + t]
        assert r["host-" + t]["cert_sha256"] and r["host-" + t]["role"] == "client"
        # The same connections are served again; the key is still there.
        st, rs, _ = by_cert.request("GetAttributes", T(TAG["UID"], uid))
        assert st == SUCCESS, (st, rs)
        assert by_pw.item("Locate")[0][0] == SUCCESS
    finally:
        for c in (by_cert, by_pw, unknown_cert, unknown_user):
            c.close()


def test_last_enabled_admin_cannot_be_disabled(k):
    # kmsctl init's admin is the only admin.
    p = k.ctl("client", "disable", "admin", check=1)
    assert "last enabled admin" in p.stderr + p.stdout
    pwf = k.dir / "admin2.pw"
    pwf.write_text("admin2-pw\n")
    k.ctl("client", "add", "--tenant", "default", "--user", "admin2", "--role", "admin",
          "--password-file", str(pwf), check=0)
    k.ctl("client", "disable", "admin", check=0)
    p = k.ctl("client", "disable", "admin2", check=1)
    assert "last enabled admin" in p.stderr + p.stdout
    k.ctl("client", "enable", "admin", check=0)
    k.ctl("client", "disable", "admin2", check=0)
    k.ctl("client", "remove", "admin2", check=0)
    c = Conn(k.port, k.pki / "client.crt", k.pki / "client.key", k.pki / "ca.crt")
    assert c.item("Locate")[0][0] == SUCCESS
    c.close()
    # Usage and refusals.
    k.ctl("client", "disable", check=2)
    k.ctl("client", "enable", "admin", "--reason", "x", check=2)
    k.ctl("client", "disable", "no-such-client", check=1)
    p = k.ctl("client", "disable", "admin", "--reason", "x" * 201)
    assert p.returncode != 0 and "1-200 printable" in p.stderr, p.stderr
    k.ctl("client", "disable", "admin", "--tenant", "other", check=1)


def test_disable_on_one_node_refused_on_another(tmp_path):
    need_kmsd()
    with H.running_cluster(tmp_path, 2) as (a, b):
        pwf = tmp_path / "u.pw"
        pwf.write_text("u-pw\n")
        a.kmsctl("client", "add", "--tenant", "default", "--user", "u1", "--password-file",
                 str(pwf))

        def answer(c):
            return c.request("Locate")[:2]

        c = Conn(b.port, b.cert, b.key, b.ca, "u1", "u-pw")
        try:
            H.wait_for(lambda: answer(c)[0] == SUCCESS, timeout=30,
                       what="node b accepting u1 added on a")
            a.kmsctl("client", "disable", "u1", "--reason", "suspected stolen")
            H.wait_for(lambda: answer(c) == (FAILED, AUTH_NOT_SUCCESSFUL), timeout=30,
                       what="node b refusing u1 disabled on a")
            r = [x for x in json.loads(b.kmsctl("--json", "client", "list").stdout)
                 if x["name"] == "u1"]
            assert r[0]["state"] == "disabled" and r[0]["disabled_reason"] == "suspected stolen"
            a.kmsctl("client", "enable", "u1")
            H.wait_for(lambda: answer(c)[0] == SUCCESS, timeout=30,
                       what="node b accepting u1 enabled on a")
        finally:
            c.close()
