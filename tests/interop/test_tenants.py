"""tests/interop/test_tenants.py: nobody reaches a key that is not theirs.

Against a real kmsd (started here from $KMSD_BUILD, set up with `kmsctl
init`), two tenants each get a certificate identity and a password
identity, registered with kmsctl over the admin socket. Tenant A creates
keys (with PyKMIP and with raw TTLV); then tenant B, with its certificate
and with its password, tries every operation on A's objects: each must
answer Item Not Found exactly as for an id that does not exist, and A
must find everything unchanged afterwards. B's Locate, with and without
filters, never returns A's ids. An unregistered certificate from the same
CA, a wrong password, an unknown user and tenant B's Credential over
tenant A's certificate are all refused with Authentication Not Successful,
answers that cannot be told apart (the same Result Reason and Result
Message).

PyKMIP cannot express KMIP 1.x Add/Modify/Delete Attribute, Archive,
Recover, Obtain Lease or Get Usage Allocation, so requests are built as raw
TTLV by the small encoder below (values checked against PyKMIP's enums).

The helpers at the top (Kmsd, kmsctl, RawKmip, ttlv builders) are also
imported by test_kmsctl_admin.py and test_audit.py.
"""
import os
import socket
import ssl
import struct
import subprocess
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.path.join(HERE, os.environ.get("KMSD_BUILD", "../../build")))
KMSCTL = os.path.join(BUILD, "kmsctl")
KMSD = os.path.join(BUILD, "kmsd")
PY = "/usr/bin/python3"

# ------------------------------------------------------------------ TTLV
STRUCT, INT, LONG, BIGINT, ENUM, BOOL, TEXT, BYTES, DATE, IVAL = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10

TAG = dict(
    REQUEST_MESSAGE=0x420078, REQUEST_HEADER=0x420077, PROTOCOL_VERSION=0x420069,
    MAJOR=0x42006A, MINOR=0x42006B, AUTHENTICATION=0x42000C, CREDENTIAL=0x420023,
    CREDENTIAL_TYPE=0x420024, CREDENTIAL_VALUE=0x420025, USERNAME=0x420099,
    PASSWORD=0x4200A1, BATCH_COUNT=0x42000D, BATCH_ITEM=0x42000F, OPERATION=0x42005C,
    REQUEST_PAYLOAD=0x420079, RESPONSE_PAYLOAD=0x42007C, RESULT_STATUS=0x42007F,
    RESULT_REASON=0x42007E, RESULT_MESSAGE=0x42007D, UID=0x420094, ATTRIBUTE=0x420008,
    ATTRIBUTE_NAME=0x42000A, ATTRIBUTE_VALUE=0x42000B, ATTRIBUTE_INDEX=0x420009,
    OBJECT_TYPE=0x420057, TEMPLATE_ATTRIBUTE=0x420091, NAME_VALUE=0x420055,
    NAME_TYPE=0x420054, REVOCATION_REASON=0x420081, REVOCATION_REASON_CODE=0x420082,
    MAXIMUM_ITEMS=0x42004F, USAGE_LIMITS_COUNT=0x420096, RESPONSE_MESSAGE=0x42007B,
)

OP = dict(Create=1, ReKey=4, Locate=8, Check=9, Get=10, GetAttributes=11,
          GetAttributeList=12, AddAttribute=13, ModifyAttribute=14, DeleteAttribute=15,
          ObtainLease=16, GetUsageAllocation=17, Activate=18, Revoke=19, Destroy=20,
          Archive=21, Recover=22)

SUCCESS, FAILED = 0, 1
ITEM_NOT_FOUND, AUTH_NOT_SUCCESSFUL, INVALID_MESSAGE = 0x01, 0x03, 0x04
OP_NOT_SUPPORTED, PERMISSION_DENIED = 0x05, 0x0C


def enc(tag, typ, val):
    if typ == STRUCT:
        body = b"".join(val)
    elif typ in (INT, ENUM, IVAL):
        body = struct.pack(">I", val & 0xFFFFFFFF) + b"\0" * 4
        return struct.pack(">I", tag)[1:] + bytes([typ]) + struct.pack(">I", 4) + body
    elif typ in (LONG, DATE):
        body = struct.pack(">q", val)
    elif typ == BOOL:
        body = struct.pack(">Q", 1 if val else 0)
    elif typ == TEXT:
        body = val.encode()
    else:
        body = bytes(val)
    n = len(body)
    pad = (8 - n % 8) % 8
    return struct.pack(">I", tag)[1:] + bytes([typ]) + struct.pack(">I", n) + body + b"\0" * pad


def S(tag, *kids):
    return enc(tag, STRUCT, list(kids))


def T(tag, s):
    return enc(tag, TEXT, s)


def E(tag, v):
    return enc(tag, ENUM, v)


def I(tag, v):
    return enc(tag, INT, v)


def L(tag, v):
    return enc(tag, LONG, v)


def dec(buf, off=0, end=None):
    """Decode items in buf[off:end] -> list of (tag, type, value)."""
    end = len(buf) if end is None else end
    out = []
    while off < end:
        tag = int.from_bytes(buf[off:off + 3], "big")
        typ = buf[off + 3]
        n = struct.unpack(">I", buf[off + 4:off + 8])[0]
        v = buf[off + 8:off + 8 + n]
        if typ == STRUCT:
            val = dec(buf, off + 8, off + 8 + n)
        elif typ in (INT, ENUM, IVAL):
            val = struct.unpack(">I", v[:4])[0]
        elif typ in (LONG, DATE):
            val = struct.unpack(">q", v)[0]
        elif typ == BOOL:
            val = v != b"\0" * 8
        elif typ == TEXT:
            val = v.decode()
        else:
            val = bytes(v)
        out.append((tag, typ, val))
        off += 8 + n + (8 - n % 8) % 8
    return out


def find(items, tag):
    for t, _, v in items:
        if t == tag:
            return v
    return None


def find_all(items, tag):
    return [v for t, _, v in items if t == tag]


def attr(name, value_item, index=None):
    kids = [T(TAG["ATTRIBUTE_NAME"], name)]
    if index is not None:
        kids.append(I(TAG["ATTRIBUTE_INDEX"], index))
    kids.append(value_item)
    return S(TAG["ATTRIBUTE"], *kids)


def name_attr(name):
    return attr("Name", S(TAG["ATTRIBUTE_VALUE"], T(TAG["NAME_VALUE"], name),
                          E(TAG["NAME_TYPE"], 1)))


def user_credential(username, password):
    """A Username and Password Credential (raw TTLV)."""
    return S(TAG["CREDENTIAL"], E(TAG["CREDENTIAL_TYPE"], 1),
             S(TAG["CREDENTIAL_VALUE"], T(TAG["USERNAME"], username), T(TAG["PASSWORD"], password)))


class RawKmip:
    """One TLS connection; request(op, payload) -> (status, reason, payload items);
    the answer's Result Message is then in .message (None when absent). The
    header's Authentication holds .credentials (raw TTLV items) when set,
    else the username's Credential."""

    def __init__(self, port, cert, key, ca, username=None, password=None):
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        ctx.check_hostname = False
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
        self.username, self.password = username, password
        self.credentials = None
        self.message = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, n):
        b = b""
        while len(b) < n:
            chunk = self.sock.recv(n - len(b))
            if not chunk:
                raise ConnectionError("kmsd closed the connection")
            b += chunk
        return b

    def request(self, op, *payload):
        hdr = [S(TAG["PROTOCOL_VERSION"], I(TAG["MAJOR"], 1), I(TAG["MINOR"], 1))]
        if self.credentials is not None:
            hdr.append(S(TAG["AUTHENTICATION"], *self.credentials))
        elif self.username is not None:
            hdr.append(S(TAG["AUTHENTICATION"], user_credential(self.username, self.password)))
        hdr.append(I(TAG["BATCH_COUNT"], 1))
        msg = S(TAG["REQUEST_MESSAGE"], S(TAG["REQUEST_HEADER"], *hdr),
                S(TAG["BATCH_ITEM"], E(TAG["OPERATION"], OP[op]),
                  S(TAG["REQUEST_PAYLOAD"], *payload)))
        self.sock.sendall(msg)
        h = self._recv(8)
        body = self._recv(struct.unpack(">I", h[4:8])[0])
        root = dec(h + body)
        assert root[0][0] == TAG["RESPONSE_MESSAGE"], root
        bi = find(root[0][2], TAG["BATCH_ITEM"])
        assert bi is not None, root
        self.message = find(bi, TAG["RESULT_MESSAGE"])
        return (find(bi, TAG["RESULT_STATUS"]), find(bi, TAG["RESULT_REASON"]),
                find(bi, TAG["RESPONSE_PAYLOAD"]) or [])


# --------------------------------------------------------------- processes
def kmsctl(*args, check=None, input=None):
    assert os.access(KMSCTL, os.X_OK), "kmsctl not built at %s" % KMSCTL
    p = subprocess.run([KMSCTL, *args], capture_output=True, text=True, timeout=120,
                       input=input)
    if check is not None:
        assert p.returncode == check, "kmsctl %s -> %d (want %d)\nstdout:%s\nstderr:%s" % (
            " ".join(args), p.returncode, check, p.stdout, p.stderr)
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Kmsd:
    """kmsctl init into `d`, then kmsd -c d/kmsd.yaml on a free port."""

    def __init__(self, d, require_registered=False):
        self.dir = d
        self.port = free_port()
        self.conf = str(d / "kmsd.yaml")
        self.pki = d / "pki"
        kmsctl("init", "--dir", str(d), "--listen", "127.0.0.1:%d" % self.port, check=0)
        if require_registered:
            y = (d / "kmsd.yaml").read_text()
            assert "  client_auth: required\n" in y
            (d / "kmsd.yaml").write_text(y.replace(
                "  client_auth: required\n",
                "  client_auth: required\n  require_registered: true\n"))
        self.logpath = d.parent / ("kmsd-%d.log" % self.port)
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen([KMSD, "-c", self.conf], stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                if os.path.exists(d / "admin.sock"):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        text = self.logtext()
        self.stop()
        pytest.fail("kmsd did not start:\n" + text[-3000:])

    def ctl(self, *args, check=None, input=None):
        return kmsctl("--config", self.conf, *args, check=check, input=input)

    def logtext(self):
        self.log.flush()
        with open(self.logpath) as f:
            return f.read()

    def issue(self, name):
        """A client certificate signed by the CA (not registered)."""
        out = self.dir / "clients"
        out.mkdir(exist_ok=True)
        kmsctl("pki", "issue-client", name, "--dir", str(self.dir), "--out-dir", str(out),
               check=0)
        return out / (name + ".crt"), out / (name + ".key")

    def raw(self, cert, key, username=None, password=None):
        return RawKmip(self.port, cert, key, self.pki / "ca.crt", username, password)

    def stop(self):
        """SIGTERM, then the exit status and sanitizer findings (an ASan
        build reports leaks and errors at exit) as a list of problems."""
        problems = []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("kmsd did not stop on SIGTERM")
        if self.proc.returncode != 0:
            problems.append("kmsd exited with status %d" % self.proc.returncode)
        text = self.logtext()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                problems.append(marker)
        self.log.close()
        return problems


def need_kmsd():
    if not os.access(KMSD, os.X_OK):
        pytest.skip("kmsd is not built at %s" % KMSD)


# ----------------------------------------------------------------- fixture
class Tenant:
    def __init__(self, k, name, certname, user, password):
        self.name = name
        self.cert, self.key = k.issue(certname)
        k.ctl("client", "add", "--tenant", name, "--cert", str(self.cert), check=0)
        pwf = k.dir / ("%s.pw" % user)
        pwf.write_text(password + "\n")
        k.ctl("client", "add", "--tenant", name, "--user", user, "--password-file", str(pwf),
              check=0)
        self.user, self.password = user, password


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_kmsd()
    k = Kmsd(tmp_path_factory.mktemp("tenants") / "kms")
    try:
        k.ctl("tenant", "add", "acme", check=0)
        k.ctl("tenant", "add", "globex", check=0)
        a = Tenant(k, "acme", "acme-host", "alice", "alice-pass-1")
        b = Tenant(k, "globex", "globex-host", "bob", "bob-pass-1")
        yield k, a, b
    finally:
        problems = k.stop()
    assert not problems, "%s\n%s" % (problems, open(k.logpath).read()[-4000:])


def create_key(c, name):
    st, rs, p = c.request("Create", E(TAG["OBJECT_TYPE"], 2), S(
        TAG["TEMPLATE_ATTRIBUTE"],
        attr("Cryptographic Algorithm", E(TAG["ATTRIBUTE_VALUE"], 3)),
        attr("Cryptographic Length", I(TAG["ATTRIBUTE_VALUE"], 256)),
        attr("Cryptographic Usage Mask", I(TAG["ATTRIBUTE_VALUE"], 12)),
        name_attr(name)))
    assert st == SUCCESS, (st, rs)
    return find(p, TAG["UID"])


def attribute_list(c, uid):
    st, rs, p = c.request("GetAttributeList", T(TAG["UID"], uid))
    assert st == SUCCESS, (st, rs)
    return sorted(find_all(p, TAG["ATTRIBUTE_NAME"]))


def get_attr(c, uid, name):
    st, rs, p = c.request("GetAttributes", T(TAG["UID"], uid), T(TAG["ATTRIBUTE_NAME"], name))
    assert st == SUCCESS, (st, rs)
    a = find(p, TAG["ATTRIBUTE"])
    return find(a, TAG["ATTRIBUTE_VALUE"]) if a else None


def attempts(uid):
    """Every operation B might try on an object id."""
    u = T(TAG["UID"], uid)
    return [
        ("Get", [u]),
        ("GetAttributes", [u, T(TAG["ATTRIBUTE_NAME"], "Cryptographic Algorithm")]),
        ("GetAttributeList", [u]),
        ("AddAttribute", [u, attr("Contact Information", T(TAG["ATTRIBUTE_VALUE"], "evil"))]),
        ("ModifyAttribute", [u, attr("Contact Information", T(TAG["ATTRIBUTE_VALUE"], "evil"))]),
        ("DeleteAttribute", [u, T(TAG["ATTRIBUTE_NAME"], "Contact Information")]),
        ("Activate", [u]),
        ("Revoke", [u, S(TAG["REVOCATION_REASON"], E(TAG["REVOCATION_REASON_CODE"], 1))]),
        ("Archive", [u]),
        ("Recover", [u]),
        ("Check", [u]),
        ("ReKey", [u]),
        ("ObtainLease", [u]),
        ("GetUsageAllocation", [u, L(TAG["USAGE_LIMITS_COUNT"], 1)]),
        ("Destroy", [u]),
    ]


def test_other_tenant_gets_item_not_found_and_changes_nothing(world):
    k, a, b = world
    ca = k.raw(a.cert, a.key)
    uid = create_key(ca, "acme-secret-%s" % uuid.uuid4().hex[:8])
    st, rs, _ = ca.request("AddAttribute", T(TAG["UID"], uid),
                           attr("Contact Information", T(TAG["ATTRIBUTE_VALUE"], "alice@acme")))
    assert st == SUCCESS, (st, rs)
    before = attribute_list(ca, uid)
    st, rs, p = ca.request("Get", T(TAG["UID"], uid))
    assert st == SUCCESS, (st, rs)
    key_before = p

    unsupported = []
    missing = dict(attempts(str(uuid.uuid4())))
    for who in ("certificate", "password"):
        cb = k.raw(b.cert, b.key, *((b.user, b.password) if who == "password" else ()))
        try:
            for op, payload in attempts(uid):
                st, rs, _ = cb.request(op, *payload)
                # The same operation on an id that does not exist at all.
                st2, rs2, _ = cb.request(op, *missing[op])
                assert st != SUCCESS, "%s by tenant B (%s) on A's key succeeded" % (op, who)
                if rs == OP_NOT_SUPPORTED and rs2 == OP_NOT_SUPPORTED:
                    unsupported.append(op)  # not implemented at all: nothing to leak
                    continue
                assert (st, rs) == (FAILED, ITEM_NOT_FOUND), (op, who, st, rs)
                assert (st2, rs2) == (st, rs), "%s answers differ for A's id and a missing id" % op
        finally:
            cb.close()

    # A finds everything as it was.
    assert attribute_list(ca, uid) == before
    assert get_attr(ca, uid, "Contact Information") == "alice@acme"
    assert get_attr(ca, uid, "State") == 1  # Pre-Active: B's Activate/Revoke/Destroy did nothing
    st, rs, p = ca.request("Get", T(TAG["UID"], uid))
    assert st == SUCCESS and p == key_before
    ca.close()
    if unsupported:
        print("operations kmsd does not implement (refused for everyone):", sorted(set(unsupported)))


def test_locate_never_returns_other_tenants_ids(world):
    k, a, b = world
    ca = k.raw(a.cert, a.key)
    name = "acme-locate-%s" % uuid.uuid4().hex[:8]
    uid = create_key(ca, name)
    st, rs, p = ca.request("Locate", name_attr(name))
    assert st == SUCCESS and find_all(p, TAG["UID"]) == [uid], (st, rs, p)
    ca.close()
    cb = k.raw(b.cert, b.key)
    mine = create_key(cb, "globex-%s" % uuid.uuid4().hex[:8])
    for filters in ([], [name_attr(name)], [attr("Object Type", E(TAG["ATTRIBUTE_VALUE"], 2))],
                    [attr("Cryptographic Algorithm", E(TAG["ATTRIBUTE_VALUE"], 3))]):
        st, rs, p = cb.request("Locate", *filters)
        assert st == SUCCESS, (st, rs)
        ids = find_all(p, TAG["UID"])
        assert uid not in ids
        if not filters:
            assert mine in ids
    cb.close()


def test_pykmip_other_tenant_cannot_get(world):
    """The same with a client we did not write."""
    k, a, b = world
    script = (
        "import sys\n"
        "from kmip.pie.client import ProxyKmipClient\n"
        "from kmip import enums\n"
        "def cl(cert, key):\n"
        "    c = ProxyKmipClient(hostname='127.0.0.1', port=%d, cert=cert, key=key, ca=%r,\n"
        "                        config_file='/dev/null')\n"
        "    c.open(); return c\n"
        "a = cl(%r, %r); b = cl(%r, %r)\n"
        "uid = a.create(enums.CryptographicAlgorithm.AES, 256)\n"
        "assert len(a.get(uid).value) == 32\n"
        "try:\n"
        "    b.get(uid); print('LEAK'); sys.exit(1)\n"
        "except Exception as e:\n"
        "    assert 'ITEM_NOT_FOUND' in str(getattr(e, 'reason', e)).upper().replace(' ', '_'), repr(e)\n"
        "assert uid not in b.locate()\n"
        "assert uid in a.locate()\n"
        "print('OK')\n" % (k.port, str(k.pki / "ca.crt"), str(a.cert), str(a.key),
                           str(b.cert), str(b.key)))
    p = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr


def test_unregistered_certificate_refused(world):
    k, a, b = world
    cert, key = k.issue("stranger-%s" % uuid.uuid4().hex[:6])
    c = k.raw(cert, key)
    try:
        st, rs, _ = c.request("Locate")
        assert (st, rs) == (FAILED, AUTH_NOT_SUCCESSFUL)
    except (ConnectionError, ssl.SSLError, OSError):
        pass  # tls.require_registered would refuse at the handshake instead
    finally:
        c.close()
    assert "kmsctl client add --tenant" in k.logtext()


def refusal(k, cert, key, user=None, password=None, creds=None):
    """The (status, reason, message) of a Locate; `creds`: the raw
    Credentials its Authentication holds instead of the user's."""
    c = k.raw(cert, key, user, password)
    c.credentials = creds
    try:
        st, rs, _ = c.request("Locate")
        return st, rs, c.message
    finally:
        c.close()


def test_wrong_password_refused(world):
    """A wrong password and an unknown user get the same answer, word for
    word: Authentication Not Successful."""
    k, a, b = world
    wrong = refusal(k, a.cert, a.key, a.user, "not-" + a.password)
    unknown = refusal(k, a.cert, a.key, "nobody", a.password)
    assert wrong[:2] == (FAILED, AUTH_NOT_SUCCESSFUL)
    assert unknown == wrong
    c = k.raw(a.cert, a.key, a.user, a.password)
    st, rs, _ = c.request("Locate")
    c.close()
    assert st == SUCCESS, (st, rs)


def test_other_tenants_credential_over_certificate_refused(world):
    """Both authenticate alone, not together: the same answer as a wrong
    password, so it does not tell that B's password was right."""
    k, a, b = world
    mixed = refusal(k, a.cert, a.key, b.user, b.password)
    assert mixed[:2] == (FAILED, AUTH_NOT_SUCCESSFUL)
    assert mixed == refusal(k, a.cert, a.key, b.user, "not-" + b.password)


def test_several_credentials(world):
    """KMIP 1.2+ lets an Authentication hold several Credentials: every one
    must authenticate and all must name the certificate's tenant, whatever
    their order; an Attestation credential is not verified and changes
    nothing; more than 4 is Invalid Message."""
    k, a, b = world
    pwf = k.dir / "carol.pw"
    pwf.write_text("carol-pass-1\n")
    k.ctl("client", "add", "--tenant", "acme", "--user", "carol", "--password-file", str(pwf),
          check=0)
    def several(t, creds):
        return refusal(k, t.cert, t.key, creds=creds)

    alice = user_credential(a.user, a.password)
    carol = user_credential("carol", "carol-pass-1")
    bob = user_credential(b.user, b.password)
    wrong = user_credential("carol", "not-carol")
    unknown = user_credential("nobody", "carol-pass-1")
    attestation = S(TAG["CREDENTIAL"], E(TAG["CREDENTIAL_TYPE"], 3),
                    S(TAG["CREDENTIAL_VALUE"]))
    assert several(a, [alice, carol])[0] == SUCCESS
    assert several(a, [carol, alice, carol])[0] == SUCCESS
    assert several(a, [attestation, alice])[0] == SUCCESS
    refused = several(a, [alice, wrong])
    assert refused[:2] == (FAILED, AUTH_NOT_SUCCESSFUL)
    for creds in ([wrong, alice], [alice, unknown], [alice, bob], [bob, alice], [alice, carol, bob]):
        assert several(a, creds) == refused, creds
    too_many = several(a, [alice] * 5)
    assert too_many[:2] == (FAILED, INVALID_MESSAGE), too_many
    assert several(a, [alice] * 4)[0] == SUCCESS
    log = k.logtext()
    assert "credential of password client 'bob' (tenant globex) with the certificate of" in log


def test_require_registered_refuses_at_handshake(tmp_path):
    """tls.require_registered: an unregistered certificate never gets to
    send a request; registering it lets it in, removing it shuts it out."""
    need_kmsd()
    k = Kmsd(tmp_path / "kms", require_registered=True)
    try:
        k.ctl("tenant", "add", "acme", check=0)
        cert, key = k.issue("late-host")

        def served():
            """"ok", "refused" (a KMIP answer) or "closed" (no answer at all)."""
            try:
                c = k.raw(cert, key)
                try:
                    st, rs, _ = c.request("Locate")
                    return "ok" if st == SUCCESS else "refused"
                finally:
                    c.close()
            except (ConnectionError, ssl.SSLError, OSError):
                return "closed"

        assert served() == "closed"  # never reached the KMIP layer
        assert "kmsctl client add --tenant" in k.logtext()
        k.ctl("client", "add", "--tenant", "acme", "--cert", str(cert), check=0)
        assert served() == "ok"
        k.ctl("client", "remove", "late-host", check=0)
        assert served() == "closed"
    finally:
        problems = k.stop()
    assert not problems, problems
