"""tests/interop/test_kmip_device.py: device clients end to end against a
running kmsd over mutual TLS.

`kmsctl client add --device-serial ...` registers them (kmsd keeps an
Argon2id hash of the password); `client list` shows their identifiers,
never the password or a hash; PyKMIP's own client (its KMIPProxy with a
Device credential made by kmip.core.factories.credentials.CredentialFactory,
CredentialType.DEVICE) is identified by them: a key created under the
operation policy `default` by one device is refused to another device of
the same tenant (KMIP 1.1 test case 11.2) and served to its creator; a
wrong password, an unknown serial number, a registered identifier sent
with another value or left out, and a device credential over another
tenant's certificate are refused with Authentication Not Successful (the
same answer for each, so none tells which was wrong), logged and audited
without the password. kmsctl's usage errors and the refusal of a
second device with the same serial number. With `tls.client_auth:
optional` a Device credential alone (no client certificate) identifies its
device. In a two-node cluster a device registered on the first node is
accepted by the second.
"""
import json
import os
import uuid

import pytest

import kmsd_harness as H
from test_tenants import AUTH_NOT_SUCCESSFUL, FAILED, PERMISSION_DENIED, SUCCESS, Kmsd, need_kmsd


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    need_kmsd()
    srv = Kmsd(tmp_path_factory.mktemp("device") / "kms")
    try:
        yield srv
    finally:
        problems = srv.stop()
    assert not problems, "%s\n%s" % (problems, open(srv.logpath).read()[-4000:])


def device_credential(serial, password, **ids):
    """A PyKMIP Device credential; ids: device_id, network_id, machine_id, media_id."""
    from kmip.core import enums
    from kmip.core.factories.credentials import CredentialFactory
    names = {"device_id": "Device Identifier", "network_id": "Network Identifier",
             "machine_id": "Machine Identifier", "media_id": "Media Identifier"}
    value = {"Device Serial Number": serial, "Password": password}
    value.update({names[k]: v for k, v in ids.items()})
    return CredentialFactory().create_credential(enums.CredentialType.DEVICE, value)


def pykmip(k, cert, key):
    from kmip.pie.client import ProxyKmipClient
    c = ProxyKmipClient(hostname="127.0.0.1", port=k.port, cert=str(cert), key=str(key),
                        ca=str(k.pki / "ca.crt"), ssl_version="PROTOCOL_TLS")
    c.open()
    return c


def create_default_policy_key(c, cred):
    """Create an AES-128 key under Operation Policy Name 'default' with the
    low-level proxy (the only PyKMIP call that takes a credential)."""
    from kmip.core import enums, objects
    from kmip.core.factories.attributes import AttributeFactory
    f = AttributeFactory()
    attrs = [
        f.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM,
                           enums.CryptographicAlgorithm.AES),
        f.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 128),
        f.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK,
                           [enums.CryptographicUsageMask.ENCRYPT,
                            enums.CryptographicUsageMask.DECRYPT]),
        f.create_attribute(enums.AttributeType.OPERATION_POLICY_NAME, "default"),
    ]
    return c.proxy.create(enums.ObjectType.SYMMETRIC_KEY,
                          objects.TemplateAttribute(attributes=attrs), credential=cred)


def outcome(result, message=False):
    """(Result Status, Result Reason or None) as numbers, and the Result
    Message when `message`."""
    reason = result.result_reason.value.value if result.result_reason else None
    if message:
        text = result.result_message.value if result.result_message else None
        return result.result_status.value.value, reason, text
    return result.result_status.value.value, reason


def query(c, cred, message=False):
    """Query Operations with the credential: the outcome."""
    from kmip.core import enums
    return outcome(c.proxy.query(query_functions=[enums.QueryFunction.QUERY_OPERATIONS],
                                 credential=cred), message)


def jctl(k, *args):
    return json.loads(k.ctl("--json", *args, check=0).stdout)


@pytest.fixture(scope="module")
def tenant(k, tmp_path_factory):
    """A tenant with a host certificate and two registered devices (the
    test case document's, the first without its Machine and Media
    Identifiers, the second by serial number alone)."""
    t = "dev-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    cert, key = k.issue("devhost-" + t)
    k.ctl("client", "add", "--tenant", t, "--cert", str(cert), check=0)
    d = tmp_path_factory.mktemp("pw")
    (d / "a").write_text("secret-" + t + "\n")
    k.ctl("client", "add", "--tenant", t, "--name", "tape-a-" + t,
          "--device-serial", "serNum123456-" + t, "--device-id", "devID2233",
          "--network-id", "netID9000", "--password-file", str(d / "a"), check=0)
    # The password from standard input, as for users.
    k.ctl("client", "add", "--tenant", t, "--name", "tape-b-" + t,
          "--device-serial", "serNum101010-" + t, input="passwd-%s\n" % t, check=0)
    return dict(name=t, cert=cert, key=key, a="serNum123456-" + t, b="serNum101010-" + t,
                pw_a="secret-" + t, pw_b="passwd-" + t)


def test_list_shows_identifiers_not_secrets(k, tenant):
    t = tenant["name"]
    rows = {r["name"]: r for r in jctl(k, "client", "list", "--tenant", t)}
    a = rows["tape-a-" + t]
    assert a["kind"] == "device" and a["role"] == "client"
    assert a["device_serial"] == tenant["a"]
    assert a["device_id"] == "devID2233" and a["network_id"] == "netID9000"
    assert "machine_id" not in a and "media_id" not in a and "cert_sha256" not in a
    b = rows["tape-b-" + t]
    assert b["kind"] == "device" and b["device_serial"] == tenant["b"]
    assert "device_id" not in b
    text = json.dumps(rows)
    assert tenant["pw_a"] not in text and tenant["pw_b"] not in text and "argon2" not in text
    plain = k.ctl("client", "list", "--tenant", t, check=0).stdout
    assert tenant["a"] in plain and "netID9000" in plain and tenant["pw_a"] not in plain


def test_operation_policy_between_devices(k, tenant):
    """Test case 11.2 with real device identities: the creator may, the
    other device of the same tenant may not."""
    c = pykmip(k, tenant["cert"], tenant["key"])
    try:
        a = device_credential(tenant["a"], tenant["pw_a"], device_id="devID2233",
                              network_id="netID9000", machine_id="machineID1",
                              media_id="mediaID313")
        b = device_credential(tenant["b"], tenant["pw_b"], device_id="devID4444",
                              network_id="netID9")
        r = create_default_policy_key(c, a)
        assert outcome(r) == (SUCCESS, None), r.result_message
        uid = r.uuid
        assert outcome(c.proxy.get(uid, credential=b)) == (FAILED, PERMISSION_DENIED)
        got = c.proxy.get(uid, credential=a)
        assert outcome(got) == (SUCCESS, None)
        assert len(got.secret.key_block.key_value.key_material.value) == 16
        assert outcome(c.proxy.destroy(uid, credential=b)) == (FAILED, PERMISSION_DENIED)
        assert outcome(c.proxy.destroy(uid, credential=a)) == (SUCCESS, None)
    finally:
        c.close()


def test_refusals(k, tenant):
    t = tenant["name"]
    c = pykmip(k, tenant["cert"], tenant["key"])
    ok = dict(device_id="devID2233", network_id="netID9000")
    refused = [
        device_credential(tenant["a"], "wrong-password-" + t, **ok),
        device_credential("serNum000000-" + t, tenant["pw_a"], **ok),
        device_credential(tenant["a"], tenant["pw_a"], device_id="devID2233",
                          network_id="netID0000"),
        device_credential(tenant["a"], tenant["pw_a"], device_id="devID2233"),
    ]
    try:
        assert query(c, device_credential(tenant["a"], tenant["pw_a"], **ok)) == (SUCCESS, None)
        answers = [query(c, cred, message=True) for cred in refused]
        assert answers[0][:2] == (FAILED, AUTH_NOT_SUCCESSFUL)
        assert answers == [answers[0]] * len(refused)
    finally:
        c.close()
    # Another tenant's certificate with a good device credential.
    other = "dev-other-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", other, check=0)
    cert, key = k.issue("host-" + other)
    k.ctl("client", "add", "--tenant", other, "--cert", str(cert), check=0)
    c = pykmip(k, cert, key)
    try:
        good = device_credential(tenant["a"], tenant["pw_a"], **ok)
        assert query(c, good, message=True) == answers[0]
    finally:
        c.close()
    # Logged and audited, never with the password.
    log = k.logtext()
    assert "device serial number 'serNum000000-%s' is not a registered device client" % t in log
    assert "sent a Network Identifier that does not match" in log
    assert "wrong password for device 'tape-a-%s'" % t in log
    k.ctl("audit", "status", check=0)  # flushes the audit writer
    audit = (k.dir / "audit.log").read_text()
    recs = [json.loads(line) for line in audit.splitlines()]
    assert any(r["reason"] == "Authentication Not Successful" and r["kind"] == "kmip"
               for r in recs)
    assert any(r["identity"] == "tape-a-" + t for r in recs)
    for secret in ("wrong-password-" + t, tenant["pw_a"], tenant["pw_b"]):
        assert secret not in log and secret not in audit


def test_kmsctl_device_usage(k, tmp_path):
    t = "devu-%s" % uuid.uuid4().hex[:8]
    k.ctl("tenant", "add", t, check=0)
    # A name is required; identifiers other than the serial need one.
    k.ctl("client", "add", "--tenant", t, "--device-serial", "S1", input="pw\n", check=2)
    k.ctl("client", "add", "--tenant", t, "--name", "d1", "--device-id", "X", input="pw\n",
          check=2)
    k.ctl("client", "add", "--tenant", t, "--name", "d1", "--device-serial", "S1",
          "--user", "u", input="pw\n", check=2)
    # Refused by kmsd: too long (malformed input), a second device with the
    # same serial number (refused).
    p = k.ctl("client", "add", "--tenant", t, "--name", "d1", "--device-serial", "S" * 65,
              input="pw\n", check=2)
    assert "--device-serial must be 1-64 characters" in p.stderr
    k.ctl("client", "add", "--tenant", t, "--name", "d1-" + t, "--device-serial", "S1-" + t,
          input="pw\n", check=0)
    p = k.ctl("client", "add", "--tenant", t, "--name", "d2-" + t, "--device-serial",
              "S1-" + t, input="pw\n", check=1)
    assert "already registered as 'd1-%s'" % t in p.stderr
    k.ctl("client", "remove", "d1-" + t, check=0)
    k.ctl("client", "add", "--tenant", t, "--name", "d2-" + t, "--device-serial", "S1-" + t,
          input="pw\n", check=0)


def write_password(k, name, password):
    path = os.path.join(k.workdir, name + ".pw")
    with open(path, "w") as f:
        f.write(password + "\n")
    return path


class Proxy:
    """A connected PyKMIP KMIPProxy, as query() expects it (`.proxy`)."""

    def __init__(self, k, cert=True):
        from kmip.services.kmip_client import KMIPProxy
        self.proxy = KMIPProxy(host=k.host, port=k.port, certfile=k.cert if cert else None,
                               keyfile=k.key if cert else None, ca_certs=k.ca,
                               cert_reqs="CERT_REQUIRED", ssl_version="PROTOCOL_TLS",
                               do_handshake_on_connect=True, suppress_ragged_eofs=True)
        self.proxy.open()

    def close(self):
        self.proxy.close()


def test_device_credential_alone_with_optional_client_auth():
    with H.server({"tls": {"client_auth": "optional"}}) as k:
        k.kmsctl("tenant", "add", "tapes")
        k.kmsctl("client", "add", "--tenant", "tapes", "--name", "lib-1", "--device-serial",
                 "SN42", "--machine-id", "m-1", "--password-file",
                 write_password(k, "lib-1", "s3cret"))
        c = Proxy(k, cert=False)
        try:
            assert query(c, device_credential("SN42", "s3cret", machine_id="m-1")) == (SUCCESS,
                                                                                      None)
            assert query(c, device_credential("SN42", "s3cret")) == (FAILED,
                                                                     AUTH_NOT_SUCCESSFUL)
            assert query(c, device_credential("SN42", "wrong", machine_id="m-1")) == (
                FAILED, AUTH_NOT_SUCCESSFUL)
        finally:
            c.close()


def test_device_registered_on_one_node_is_accepted_by_another(tmp_path):
    """Clients replicate: kmsctl on node a, PyKMIP's Device credential on b
    (over the cluster's admin certificate of tenant default, which both
    nodes know)."""
    with H.running_cluster(tmp_path, 2) as (a, b):
        a.kmsctl("client", "add", "--tenant", "default", "--name", "dev-a", "--device-serial",
                 "SN-CLUSTER", "--device-id", "d-1", "--password-file",
                 write_password(a, "dev-a", "pw-cluster"))
        good = device_credential("SN-CLUSTER", "pw-cluster", device_id="d-1")

        def accepted():
            c = Proxy(b)
            try:
                return query(c, good) == (SUCCESS, None)
            finally:
                c.close()
        H.wait_for(accepted, timeout=30, what="node b accepting the device registered on a")
        c = Proxy(b)
        try:
            assert query(c, device_credential("SN-CLUSTER", "other", device_id="d-1")) == (
                FAILED, AUTH_NOT_SUCCESSFUL)
        finally:
            c.close()
        rows = json.loads(b.kmsctl("--json", "client", "list").stdout)
        dev = [r for r in rows if r["name"] == "dev-a"]
        assert dev and dev[0]["device_serial"] == "SN-CLUSTER" and dev[0]["device_id"] == "d-1"


V9_CLIENTS = """
BEGIN;
UPDATE clients SET cert_sha256 = device_serial || char(31) || device_id || char(31)
    || network_id || char(31) || machine_id || char(31) || media_id WHERE kind = 'device';
DROP INDEX clients_device;
ALTER TABLE clients DROP COLUMN device_serial;
ALTER TABLE clients DROP COLUMN device_id;
ALTER TABLE clients DROP COLUMN network_id;
ALTER TABLE clients DROP COLUMN machine_id;
ALTER TABLE clients DROP COLUMN media_id;
CREATE UNIQUE INDEX clients_device ON clients(substr(cert_sha256, 1,
    instr(cert_sha256, char(31)) - 1)) WHERE kind = 'device';
DROP INDEX attributes_tenant_skey;
DROP INDEX attributes_tenant_ikey;
ALTER TABLE attributes DROP COLUMN tenant;
CREATE INDEX attributes_skey ON attributes(name, skey) WHERE skey IS NOT NULL;
CREATE INDEX attributes_ikey ON attributes(name, ikey) WHERE ikey IS NOT NULL;
ALTER TABLE clients DROP COLUMN disabled;
ALTER TABLE clients DROP COLUMN disabled_us;
ALTER TABLE clients DROP COLUMN disabled_reason;
DELETE FROM schema_version WHERE version >= 10;
COMMIT;
"""


def client_columns(db):
    import sqlite3
    c = sqlite3.connect(db)
    try:
        return [r[1] for r in c.execute("PRAGMA table_info(clients)")]
    finally:
        c.close()


def test_device_login_after_upgrade_from_schema_v9():
    """A database as kmsd with schema v9 left it (a device's identifiers
    packed into cert_sha256 behind 0x1f separators, v9's index on the
    first of them) is upgraded when kmsd starts: the device logs in with
    the same credential, a wrong identifier is still refused, and the
    identifiers are in their own columns with cert_sha256 empty."""
    import sqlite3
    with H.server({"tls": {"client_auth": "optional"}}) as k:
        k.kmsctl("tenant", "add", "tapes")
        k.kmsctl("client", "add", "--tenant", "tapes", "--name", "lib-9", "--device-serial",
                 "SN-V9", "--device-id", "dev-9", "--media-id", "med-9", "--password-file",
                 write_password(k, "lib-9", "pw-v9"))
        k.stop()
        db = os.path.join(k.dir, "kms.db")
        c = sqlite3.connect(db)
        c.executescript(V9_CLIENTS)
        packed = c.execute("SELECT cert_sha256 FROM clients WHERE name = 'lib-9'").fetchone()[0]
        c.close()
        assert packed == "SN-V9\x1fdev-9\x1f\x1f\x1fmed-9"
        assert "device_serial" not in client_columns(db)
        k.start()
        assert "schema migrated to v10" in k.log_text()
        assert "schema migrated to v11" in k.log_text()
        assert "schema migrated to v12" in k.log_text()
        cl = Proxy(k, cert=False)
        try:
            good = device_credential("SN-V9", "pw-v9", device_id="dev-9", media_id="med-9")
            assert query(cl, good) == (SUCCESS, None)
            assert query(cl, device_credential("SN-V9", "pw-v9", device_id="dev-0",
                                               media_id="med-9")) == (FAILED, AUTH_NOT_SUCCESSFUL)
        finally:
            cl.close()
        rows = json.loads(k.kmsctl("--json", "client", "list", "--tenant", "tapes").stdout)
        assert len(rows) == 1 and rows[0].pop("created") > 0
        assert rows == [{"name": "lib-9", "tenant": "tapes", "role": "client", "kind": "device",
                         "device_serial": "SN-V9", "device_id": "dev-9", "media_id": "med-9",
                         "state": "enabled"}]
        k.stop()
        c = sqlite3.connect(db)
        try:
            row = c.execute("SELECT cert_sha256, device_serial, device_id, network_id, machine_id,"
                            " media_id FROM clients WHERE name = 'lib-9'").fetchone()
            version = c.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        finally:
            c.close()
        assert row == ("", "SN-V9", "dev-9", "", "", "med-9")
        assert version == 12
        k.start()


def test_device_clients_backup_and_restore(tmp_path):
    """A device client goes into a backup with its identifiers and comes
    back from it on another server: it logs in there, and `client list`
    shows the same identifiers."""
    over = {"tls": {"client_auth": "optional"}}
    with H.server(over) as a, H.server(over) as b:
        a.kmsctl("tenant", "add", "tapes")
        a.kmsctl("client", "add", "--tenant", "tapes", "--name", "lib-b", "--device-serial",
                 "SN-BAK", "--network-id", "net-b", "--machine-id", "m-b", "--password-file",
                 write_password(a, "lib-b", "pw-bak"))
        pw = tmp_path / "pass"
        pw.write_text("device backup\n")
        out = tmp_path / "kms.bak"
        a.kmsctl("backup", "--out", str(out), "--passphrase-file", str(pw))
        b.kmsctl("restore", "--in", str(out), "--passphrase-file", str(pw))
        want = json.loads(a.kmsctl("--json", "client", "list", "--tenant", "tapes").stdout)
        got = json.loads(b.kmsctl("--json", "client", "list", "--tenant", "tapes").stdout)
        assert got == want and got[0]["device_serial"] == "SN-BAK"
        c = Proxy(b, cert=False)
        try:
            good = device_credential("SN-BAK", "pw-bak", network_id="net-b", machine_id="m-b")
            assert query(c, good) == (SUCCESS, None)
            assert query(c, device_credential("SN-BAK", "pw-bak", network_id="net-b")) == (
                FAILED, AUTH_NOT_SUCCESSFUL)
        finally:
            c.close()
