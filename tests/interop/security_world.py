"""tests/interop/security_world.py: two tenants on one real kmsd, for the
test_security_*.py attack tests.

`World(tmpdir)` (or the module fixture `world`) starts a kmsd (kmsd_harness: `kmsctl init`, the ASan or
normal build of $KMSD_BUILD) with the HTTPS listener on, the log at debug
level and the audit log on, adds tenants `acme` (A, the victim) and
`globex` (B, the attacker), and registers for each a certificate client
and a password client. `World.conn(who)` opens a raw KMIP connection as
one of them; `Conn.batch()` sends any batch and gives back every item's
status, reason, message and payload, `Conn.req()` one item.

The TTLV builders are those of test_tenants.py, with the tags and
operations the attack tests need by name. It knows no KMIP semantics
beyond encoding requests; the tests assert the answers.
"""
import os
import struct
import subprocess

import kmsd_harness as H
import pytest
from kmip.core import enums
from test_tenants import OP as BASE_OP
from test_tenants import TAG as BASE_TAG
from test_tenants import E, I, S, T, RawKmip, attr, dec, enc, find, find_all, name_attr  # noqa: F401

BYTES, BOOL = 8, 6

# The tags the attacks add to test_tenants' TAG, under short names where
# PyKMIP's (whose values these are) are long: SHORT=PYKMIP_NAME or NAME.
MORE_TAGS = """
    COMMON_TA=COMMON_TEMPLATE_ATTRIBUTE PRIVATE_TA=PRIVATE_KEY_TEMPLATE_ATTRIBUTE
    PUBLIC_TA=PUBLIC_KEY_TEMPLATE_ATTRIBUTE KWS=KEY_WRAPPING_SPECIFICATION WRAPPING_METHOD
    EKI=ENCRYPTION_KEY_INFORMATION DATA SIGNATURE_DATA MAC_DATA IV=IV_COUNTER_NONCE
    DERIVATION_METHOD DERIVATION_PARAMETERS SALT ITERATION_COUNT
    CRYPTO_PARAMS=CRYPTOGRAPHIC_PARAMETERS BLOCK_CIPHER_MODE PADDING_METHOD HASHING_ALGORITHM
    DIGITAL_SIGNATURE_ALGORITHM CRYPTO_ALGORITHM=CRYPTOGRAPHIC_ALGORITHM
    CRYPTO_LENGTH=CRYPTOGRAPHIC_LENGTH PRIVATE_UID=PRIVATE_KEY_UNIQUE_IDENTIFIER
    PUBLIC_UID=PUBLIC_KEY_UNIQUE_IDENTIFIER LINK_TYPE LINKED_ID=LINKED_OBJECT_IDENTIFIER
    ASYNC_INDICATOR=ASYNCHRONOUS_INDICATOR ASYNC_CORRELATION=ASYNCHRONOUS_CORRELATION_VALUE
    BATCH_ERROR_CONTINUATION=BATCH_ERROR_CONTINUATION_OPTION STORAGE_STATUS_MASK OFFSET_ITEMS
    KEY_BLOCK KEY_FORMAT_TYPE KEY_VALUE KEY_MATERIAL SYMMETRIC_KEY KEY_WRAPPING_DATA SECRET_DATA
    SECRET_DATA_TYPE SPLIT_KEY_PARTS SPLIT_KEY_THRESHOLD SPLIT_KEY_METHOD
    CERT_SUBJECT_DN=CERTIFICATE_SUBJECT_DISTINGUISHED_NAME STREAM_CORRELATION=CORRELATION_VALUE
    INIT_INDICATOR FINAL_INDICATOR LOCATED_ITEMS
"""
TAG = dict(BASE_TAG)
for _spec in MORE_TAGS.split():
    _short, _, _long = _spec.partition("=")
    TAG[_short] = enums.Tags[_long or _short].value

OP = dict(BASE_OP, CreateKeyPair=2, Register=3, DeriveKey=5, Certify=6, ReCertify=7,
          Validate=23, Cancel=25, Poll=26, ReKeyKeyPair=29, Encrypt=31, Decrypt=32, Sign=33,
          SignatureVerify=34, MAC=35, MACVerify=36, CreateSplitKey=40, JoinSplitKey=41)

SUCCESS, FAILED, PENDING = 0, 1, 2
ITEM_NOT_FOUND, AUTHENTICATION_NOT_SUCCESSFUL, PERMISSION_DENIED = 0x01, 0x03, 0x0C
# A refused credential or identity: which of the two reasons is
# test_tenants' and kmip/auth.c's tests' business, not these.
REFUSED = (PERMISSION_DENIED, AUTHENTICATION_NOT_SUCCESSFUL)

# Cryptographic Usage Mask bits.
SIGN, VERIFY, ENCRYPT, DECRYPT, WRAP, UNWRAP, MAC_GEN, MAC_VER, DERIVE = \
    1, 2, 4, 8, 16, 32, 128, 256, 512


def B(tag, value):
    return enc(tag, BYTES, value)


def BO(tag, value):
    return enc(tag, BOOL, value)


def U(uid):
    return T(TAG["UID"], uid)


def V(item_fn, value):
    """An Attribute Value of a scalar type: V(E, 3), V(I, 256), V(T, "x")."""
    return item_fn(TAG["ATTRIBUTE_VALUE"], value)


class Conn(RawKmip):
    """One TLS connection as one identity (a certificate, and a Credential
    when user is given): test_tenants.RawKmip, with whole batches, the
    Result Message and the request header's other fields."""

    def __init__(self, k, cert, key, user=None, password=None):
        RawKmip.__init__(self, k.port, cert, key, k.ca, user, password)

    def encode(self, items, header=(), minor=4):
        """The Request Message bytes for [(operation name, [payload items]), ...]."""
        hdr = [S(TAG["PROTOCOL_VERSION"], I(TAG["MAJOR"], 1), I(TAG["MINOR"], minor))]
        if self.username is not None:
            hdr.append(S(TAG["AUTHENTICATION"], S(
                TAG["CREDENTIAL"], E(TAG["CREDENTIAL_TYPE"], 1),
                S(TAG["CREDENTIAL_VALUE"], T(TAG["USERNAME"], self.username),
                  T(TAG["PASSWORD"], self.password)))))
        hdr.extend(header)
        hdr.append(I(TAG["BATCH_COUNT"], len(items)))
        batch = []
        for it in items:
            op, payload, extra = it if len(it) == 3 else (*it, ())
            batch.append(S(TAG["BATCH_ITEM"], E(TAG["OPERATION"], OP[op]), *extra,
                           S(TAG["REQUEST_PAYLOAD"], *payload)))
        return S(TAG["REQUEST_MESSAGE"], S(TAG["REQUEST_HEADER"], *hdr), *batch)

    def batch(self, items, header=(), minor=4):
        """Every answered item as (status, reason, message, payload items)."""
        self.sock.sendall(self.encode(items, header, minor))
        h = self._recv(8)
        root = dec(h + self._recv(struct.unpack(">I", h[4:8])[0]))
        assert root[0][0] == TAG["RESPONSE_MESSAGE"], root
        self.last_items = find_all(root[0][2], TAG["BATCH_ITEM"])
        return [(find(bi, TAG["RESULT_STATUS"]), find(bi, TAG["RESULT_REASON"]),
                 find(bi, TAG["RESULT_MESSAGE"]), find(bi, TAG["RESPONSE_PAYLOAD"]) or [])
                for bi in find_all(root[0][2], TAG["BATCH_ITEM"])]

    def req(self, op, *payload, header=(), minor=4):
        return self.batch([(op, list(payload))], header, minor)[0]

    def ok(self, op, *payload):
        """Run one item that must succeed; its payload."""
        st, rs, msg, p = self.req(op, *payload)
        assert st == SUCCESS, (op, st, rs, msg)
        return p


class Identity:
    def __init__(self, tenant, name, cert, key, user=None, password=None):
        self.tenant, self.name = tenant, name
        self.cert, self.key, self.user, self.password = cert, key, user, password


class World:
    """kmsd with tenants acme (A) and globex (B), a certificate client and a
    password client each. w.a / w.b are the certificate identities,
    w.a_pw / w.b_pw the password ones (over the tenant's certificate)."""

    def __init__(self, workdir, overrides=None):
        self.http_port = H.free_port()
        conf = {"http": {"listen": ["127.0.0.1:%d" % self.http_port]},
                "log": {"level": "debug"}}
        H.deep_merge(conf, overrides or {})
        self.k = H.Kmsd(str(workdir), conf)
        self.clients_dir = os.path.join(str(workdir), "clients")
        os.makedirs(self.clients_dir, exist_ok=True)
        for t in ("acme", "globex"):
            self.k.kmsctl("tenant", "add", t)
        self.a, self.a_pw = self.tenant("acme", "acme-host", "alice", "alice-Pw-7d1c0e")
        self.b, self.b_pw = self.tenant("globex", "globex-host", "bob", "bob-Pw-39aa51")

    def issue(self, name):
        """A client certificate the CA signed (not registered)."""
        subprocess.run([H.kmsctl_bin(), "pki", "issue-client", name, "--dir", self.k.dir,
                          "--out-dir", self.clients_dir], check=True, capture_output=True,
                         timeout=120)
        return (os.path.join(self.clients_dir, name + ".crt"),
                os.path.join(self.clients_dir, name + ".key"))

    def add_password_client(self, tenant, user, password, role="client"):
        pwf = os.path.join(self.clients_dir, user + ".pw")
        with open(pwf, "w") as f:
            f.write(password + "\n")
        self.k.kmsctl("client", "add", "--tenant", tenant, "--user", user, "--password-file",
                      pwf, "--role", role)

    def tenant(self, tenant, host, user, password):
        cert, key = self.issue(host)
        self.k.kmsctl("client", "add", "--tenant", tenant, "--cert", cert)
        self.add_password_client(tenant, user, password)
        return (Identity(tenant, host, cert, key),
                Identity(tenant, user, cert, key, user, password))

    def conn(self, who):
        return Conn(self.k, who.cert, who.key, who.user, who.password)

    def admin(self):
        """The admin client `kmsctl init` registered (tenant default)."""
        return Conn(self.k, self.k.cert, self.k.key)

    def stop(self):
        """SIGTERM and a clean exit; sanitizer findings in the log fail."""
        if self.k.running():
            self.k.stop()
        text = self.k.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in text, marker + "\n" + text[-4000:]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One World for a test module (import it into the module)."""
    w = World(tmp_path_factory.mktemp("security"))
    try:
        yield w
    finally:
        w.stop()


# ------------------------------------------------------------ objects
def create_aes(c, mask=ENCRYPT | DECRYPT | WRAP | UNWRAP | MAC_GEN | MAC_VER | DERIVE,
               extra=(), activate=True, bits=256):
    p = c.ok("Create", E(TAG["OBJECT_TYPE"], 2), S(
        TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Algorithm", V(E, 3)),
        attr("Cryptographic Length", V(I, bits)), attr("Cryptographic Usage Mask", V(I, mask)),
        *extra))
    uid = find(p, TAG["UID"])
    if activate:
        c.ok("Activate", U(uid))
    return uid


def create_rsa_pair(c):
    p = c.ok("CreateKeyPair",
             S(TAG["COMMON_TA"], attr("Cryptographic Algorithm", V(E, 4)),
               attr("Cryptographic Length", V(I, 2048))),
             S(TAG["PRIVATE_TA"], attr("Cryptographic Usage Mask", V(I, SIGN))),
             S(TAG["PUBLIC_TA"], attr("Cryptographic Usage Mask", V(I, VERIFY))))
    priv, pub = find(p, TAG["PRIVATE_UID"]), find(p, TAG["PUBLIC_UID"])
    for uid in (priv, pub):
        c.ok("Activate", U(uid))
    return priv, pub


def register_secret(c, value, mask=DERIVE, activate=True):
    p = c.ok("Register", E(TAG["OBJECT_TYPE"], 7),
             S(TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Usage Mask", V(I, mask))),
             S(TAG["SECRET_DATA"], E(TAG["SECRET_DATA_TYPE"], 2), S(
                 TAG["KEY_BLOCK"], E(TAG["KEY_FORMAT_TYPE"], 2),
                 S(TAG["KEY_VALUE"], B(TAG["KEY_MATERIAL"], value)))))
    uid = find(p, TAG["UID"])
    if activate:
        c.ok("Activate", U(uid))
    return uid


def register_aes(c, value, mask=ENCRYPT | DECRYPT | WRAP | UNWRAP, activate=True):
    p = c.ok("Register", E(TAG["OBJECT_TYPE"], 2),
             S(TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Usage Mask", V(I, mask))),
             S(TAG["SYMMETRIC_KEY"], S(
                 TAG["KEY_BLOCK"], E(TAG["KEY_FORMAT_TYPE"], 1),
                 S(TAG["KEY_VALUE"], B(TAG["KEY_MATERIAL"], value)),
                 E(TAG["CRYPTO_ALGORITHM"], 3), I(TAG["CRYPTO_LENGTH"], 8 * len(value)))))
    uid = find(p, TAG["UID"])
    if activate:
        c.ok("Activate", U(uid))
    return uid


def deep(items, tag):
    """Every value of `tag` at any depth of decoded items."""
    out = []
    for t, typ, v in items:
        if t == tag:
            out.append(v)
        if typ == 1:
            out.extend(deep(v, tag))
    return out


def key_bytes(c, uid):
    """The Key Material of an object as its owner gets it."""
    return deep(c.ok("Get", U(uid)), TAG["KEY_MATERIAL"])


def attribute_values(c, uid):
    """Every attribute of an object as the owner sees it (a comparable list)."""
    st, rs, msg, p = c.req("GetAttributes", U(uid))
    assert st == SUCCESS, (st, rs, msg)
    return sorted(repr(a) for a in find_all(p, 0x420008))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
