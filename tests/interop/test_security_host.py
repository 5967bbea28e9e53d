"""tests/interop/test_security_host.py: what a tenant, a peer on the
network or a local user can learn outside KMIP answers: logs, the audit
log, the HTTPS listener (KMIP in JSON and XML, /metrics, health), the admin
socket and the files of kmsd's directory.

- Secrets: tenant A registers, gets, wraps and unwraps keys with known
  byte patterns, authenticates with a known password, and sends malformed
  JSON and XML requests built around them; at log level debug, no form
  of any pattern (raw, hex, base64) or password is in kmsd's log or the
  audit log afterwards.
- HTTPS: tenant B's Get of A's id in JSON and XML answers as a missing
  id does; /metrics refuses B's certificate exactly as no certificate
  (403, same body: the server-wide totals are the operator's, O15);
  /metrics (as the admin reads it), /healthz and /readyz name no tenant,
  client, object or Name.
- Local users (root only, skipped otherwise): a Unix user made for the
  test (and removed after it) can neither connect to the admin socket
  nor read any file of kmsd's directory, even with the directory opened
  for traversal.
"""
import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from security_world import world  # noqa: F401 (fixture)
from security_world import (
    SUCCESS, TAG, B, E, I, S, U, V, World, attr, create_aes, find, key_bytes, name_attr,
    register_aes)


def https(w, cert=True, who=None):
    ctx = w.k.ssl_context(cert=cert, certfile=who.cert if who else None,
                          keyfile=who.key if who else None)
    return http.client.HTTPSConnection(w.k.host, w.http_port, timeout=30, context=ctx)


def post(w, who, body, ctype):
    c = https(w, who=who)
    try:
        c.request("POST", "/kmip", body=body, headers={"Content-Type": ctype})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def forms(secret):
    """The ways a secret could show in a text file."""
    if isinstance(secret, str):
        return [secret.encode()]
    return [secret, secret.hex().encode(), secret.hex().upper().encode(),
            base64.b64encode(secret).rstrip(b"="), base64.b64encode(secret[1:]).rstrip(b"=")[:24],
            base64.b64encode(secret[2:]).rstrip(b"=")[:24]]


def test_no_secret_in_logs_or_audit(tmp_path):
    w = World(tmp_path)
    try:
        scan_after_secrets(w)
    finally:
        w.k.kill()


SHORT = bytes.fromhex("5ec2e7d47a5ec2e7d4")  # 9 bytes: 18 hex digits


def scan_after_secrets(w):
    key1 = bytes.fromhex("5ec2e7a11ce5" * 5 + "5ec2")
    key2 = bytes.fromhex("0b5e55ed" * 7 + "0b5e5502")
    c = w.conn(w.a_pw)
    uid1 = register_aes(c, key1)
    assert key_bytes(c, uid1) == [key1]
    # key2 travels wrapped under key1 (Register unwraps it), and back
    # wrapped (Get with a Key Wrapping Specification).
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    wrapped = aes_key_wrap(key1, S(TAG["KEY_VALUE"], B(TAG["KEY_MATERIAL"], key2)))
    p = c.ok("Register", E(TAG["OBJECT_TYPE"], 2),
             S(TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Usage Mask", V(I, 12))),
             S(TAG["SYMMETRIC_KEY"], S(
                 TAG["KEY_BLOCK"], E(TAG["KEY_FORMAT_TYPE"], 1), B(TAG["KEY_VALUE"], wrapped),
                 E(TAG["CRYPTO_ALGORITHM"], 3), I(TAG["CRYPTO_LENGTH"], 256),
                 S(TAG["KEY_WRAPPING_DATA"], E(TAG["WRAPPING_METHOD"], 1), S(
                     TAG["EKI"], U(uid1),
                     S(TAG["CRYPTO_PARAMS"], E(TAG["BLOCK_CIPHER_MODE"], 13)))))))
    uid2 = find(p, TAG["UID"])
    c.ok("Activate", U(uid2))
    assert key_bytes(c, uid2) == [key2]
    short = c.ok("Register", E(TAG["OBJECT_TYPE"], 7), S(TAG["TEMPLATE_ATTRIBUTE"]), S(
        TAG["SECRET_DATA"], E(TAG["SECRET_DATA_TYPE"], 1), S(
            TAG["KEY_BLOCK"], E(TAG["KEY_FORMAT_TYPE"], 2),
            S(TAG["KEY_VALUE"], B(TAG["KEY_MATERIAL"], SHORT)))))
    assert key_bytes(c, find(short, TAG["UID"])) == [SHORT]
    c.ok("Get", U(uid2), S(TAG["KWS"], E(TAG["WRAPPING_METHOD"], 1), S(TAG["EKI"], U(uid1))))
    # Attempts that carry the patterns and fail: a wrong password, a key
    # whose length does not match its Cryptographic Length.
    bad = w.conn(w.a_pw)
    bad.password = "wrong-" + w.a_pw.password
    assert bad.req("Locate")[0] != SUCCESS
    bad.close()
    st, rs, msg, _ = c.req("Register", E(TAG["OBJECT_TYPE"], 2),
                           S(TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Usage Mask", V(I, 12))),
                           S(TAG["SYMMETRIC_KEY"], S(
                               TAG["KEY_BLOCK"], E(TAG["KEY_FORMAT_TYPE"], 1),
                               S(TAG["KEY_VALUE"], B(TAG["KEY_MATERIAL"], key2[:31])),
                               E(TAG["CRYPTO_ALGORITHM"], 3), I(TAG["CRYPTO_LENGTH"], 256))))
    assert st != SUCCESS, (st, rs, msg)
    c.close()

    # Malformed JSON and XML requests over HTTPS whose broken spot is a
    # key or a password: the parser's error must not quote them (jansson
    # quotes a token of up to 20 characters "near" the error).
    hexkey, pw, short = key2.hex(), w.a_pw.password, SHORT.hex()
    bodies = [
        ('{"tag":"RequestMessage","value":[{"tag":"KeyMaterial","type":"ByteString",'
         '"value":"00" "%s"}]}' % short, "application/json"),
        ('{"tag":"KeyMaterial","type":"ByteString","value" "%s"}' % hexkey, "application/json"),
        ('{"tag":"RequestMessage","value":[{"tag":"Password","type":"TextString",'
         '"value":"x" "%s"}]}' % pw, "application/json"),
        ('{"tag":"KeyMaterial","type":"ByteString","value":"%s" "%s"}' % (hexkey, hexkey),
         "application/json"),
        ('<RequestMessage><KeyMaterial type="ByteString" value="%s"></RequestMessage>' % hexkey,
         "text/xml"),
        ('<RequestMessage><Password type="TextString" value="%s" value="%s"/></RequestMessage>'
         % (pw, pw), "text/xml"),
    ]
    for body, ctype in bodies:
        status, _ = post(w, w.a, body.encode(), ctype)
        assert status == 400, (status, body)

    c = https(w, cert=False)
    c.request("GET", "/healthz")
    assert c.getresponse().status == 200
    c.close()

    w.k.stop()  # flushes the audit log
    secrets = [key1, key2, SHORT, wrapped, w.a_pw.password, w.b_pw.password,
               "wrong-" + w.a_pw.password]
    texts = {"kmsd log": open(w.k.log_path, "rb").read()}
    audit = os.path.join(w.k.dir, "audit.log")
    texts["audit log"] = open(audit, "rb").read()
    assert texts["audit log"].count(b"\n") > 10 and b'"operation":"Register"' in texts["audit log"]
    assert re.search(rb" DEBUG .*http /healthz 200", texts["kmsd log"]), "no debug lines"
    found = []
    for name, text in texts.items():
        for s in secrets:
            for f in forms(s):
                if f in text:
                    at = text.index(f)
                    found.append((name, f[:16], text[max(0, at - 120):at + 40]))
    assert not found, "secrets in files:\n" + "\n".join(map(repr, found))


GET_JSON = ('{"tag":"RequestMessage","value":[{"tag":"RequestHeader","value":['
            '{"tag":"ProtocolVersion","value":['
            '{"tag":"ProtocolVersionMajor","type":"Integer","value":1},'
            '{"tag":"ProtocolVersionMinor","type":"Integer","value":4}]},'
            '{"tag":"BatchCount","type":"Integer","value":1}]},'
            '{"tag":"BatchItem","value":[{"tag":"Operation","type":"Enumeration","value":"Get"},'
            '{"tag":"RequestPayload","value":['
            '{"tag":"UniqueIdentifier","type":"TextString","value":"%s"}]}]}]}')
GET_XML = ('<RequestMessage><RequestHeader><ProtocolVersion>'
           '<ProtocolVersionMajor type="Integer" value="1"/>'
           '<ProtocolVersionMinor type="Integer" value="4"/></ProtocolVersion>'
           '<BatchCount type="Integer" value="1"/></RequestHeader><BatchItem>'
           '<Operation type="Enumeration" value="Get"/><RequestPayload>'
           '<UniqueIdentifier type="TextString" value="%s"/></RequestPayload></BatchItem>'
           '</RequestMessage>')


def get_over_https(w, who, uid, form):
    body, ctype = (GET_JSON, "application/json") if form == "json" else (GET_XML, "text/xml")
    status, answer = post(w, who, (body % uid).encode(), ctype)
    assert status == 200, (status, answer)
    # The Time Stamp differs from one answer to the next; the id is named.
    return re.sub(r"TimeStamp[^}>]*", "TimeStamp", answer.decode().replace(uid, "<id>"))


def test_https_same_identity_rules_and_metrics_name_nobody(world):
    w = world
    ca = w.conn(w.a)
    name = "acme-over-https-name"
    a_key = create_aes(ca, extra=[name_attr(name)])
    ca.close()
    for form in ("json", "xml"):
        foreign = get_over_https(w, w.b, a_key, form)
        absent = get_over_https(w, w.b, str(uuid.uuid4()), form)
        assert foreign == absent and "ItemNotFound" in foreign, (foreign, absent)
        assert "KeyMaterial" in get_over_https(w, w.a, a_key, form)

    def scrape(**kw):
        c = https(w, **kw)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    none = scrape(cert=False)
    assert none == (403, b"forbidden\n"), none
    for who in (w.b, w.a):
        assert scrape(who=who) == none, who.name
    status, metrics = scrape()  # the admin kmsctl init registered
    metrics = metrics.decode()
    assert status == 200 and "kmsd_kmip_requests_total" in metrics, (status, metrics[:200])
    texts = [metrics]
    for path in ("/healthz", "/readyz"):
        c = https(w, cert=False)
        c.request("GET", path)
        r = c.getresponse()
        texts.append(r.read().decode())
        assert r.status == 200, path
        c.close()
    for text in texts:
        for s in (a_key, name, "acme", "globex", w.a.name, w.b.name, w.a_pw.user, w.b_pw.user):
            assert s not in text, (s, text[:300])


# A file of kmsd's directory an unprivileged user may read: public
# certificates and the configuration (paths, no secret).
PUBLIC = re.compile(r"(\.crt|/kmsd\.yaml)$")

PROBE = r"""
import json, os, socket, sys
out = {"connect": None, "readable": []}
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    out["connect"] = "connected"
except OSError as e:
    out["connect"] = e.errno
for p in sys.argv[2:]:
    try:
        open(p, "rb").read(1)
        out["readable"].append(p)
    except OSError:
        pass
print(json.dumps(out))
"""


def test_local_user_reaches_neither_admin_socket_nor_files(world, tmp_path):
    import errno
    import pwd
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to make a user of its own")
    user = "kmsprobe%d" % (os.getpid() % 100000)
    p = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        user], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    opened = []
    try:
        pw = pwd.getpwnam(user)
        # An operator may leave the path to the directory traversable: the
        # files' own modes must still keep the user out.
        d = w_dir = world.k.dir
        while d != "/":
            mode = os.stat(d).st_mode & 0o777
            if not mode & 0o001:
                opened.append((d, mode))
                os.chmod(d, mode | 0o001)
            d = os.path.dirname(d)
        files = [os.path.join(r, f) for r, _, fs in os.walk(w_dir) for f in fs]
        sock = os.path.join(w_dir, "admin.sock")
        assert sock in files and os.path.join(w_dir, "audit.log") in files
        files.remove(sock)
        probe = subprocess.run(["/usr/bin/python3", "-c", PROBE, sock, *files], user=pw.pw_uid,
                               group=pw.pw_gid, extra_groups=[], cwd="/", capture_output=True,
                               text=True, timeout=60)
        assert probe.returncode == 0, probe.stderr
        out = json.loads(probe.stdout)
        assert out["connect"] == errno.EACCES, out
        secret = [f for f in out["readable"] if not PUBLIC.search(f)]
        assert not secret, "readable by user %s: %s" % (user, secret)
    finally:
        for d, mode in opened:
            os.chmod(d, mode)
        subprocess.run(["userdel", user], capture_output=True, timeout=60)
    assert subprocess.run(["id", user], capture_output=True).returncode != 0
