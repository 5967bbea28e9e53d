"""tests/interop/test_http.py: the HTTPS listener (http.listen) of a real kmsd.

- curl and a Prometheus text-format parser (python3-prometheus-client) read
  GET /metrics; the counters move with KMIP requests; /healthz and /readyz
  answer without a client certificate, /metrics and /kmip need one;
- /metrics is read only by a certificate http.metrics_clients lists (an
  unregistered one, as a Prometheus's) or a registered admin client's,
  checked at every scrape (a removed admin is refused on its open
  connection); every other certificate, a tenant's client too, gets 403
  and the same body as none;
- POST /kmip serves Create, Get, Locate and Destroy, built with the
  harness's TTLV encoder, in TTLV, JSON and XML with the same results, in
  the request's encoding, with the same identity and tenant as port 5696
  (an object made over HTTPS is read back over KMIP) and the same audit;
- bad HTTP is refused cleanly: oversized headers (431), a wrong Content-Type
  (415), a body over http.max_body (413), garbage (400), a slowloris client
  (closed at limits.message_timeout), pipelined requests answered in order,
  a client that pipelines without reading (closed, kmsd keeps serving);
- /readyz turns 503 when the SoftHSM token is removed and 200 when it is back.
The JSON and XML forms are written here from the KMIP profiles' rules, not
with kmsd's codec.
"""
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

import kmsd_harness as H
from test_hsm_pkcs11 import pkcs11_kmsd, token  # noqa: F401 (fixture)

prom = pytest.importorskip("prometheus_client.parser")

T = {"UniqueIdentifier": 0x420094, "ObjectType": 0x420057, "TemplateAttribute": 0x420091,
     "Attribute": 0x420008, "AttributeName": 0x42000A, "AttributeValue": 0x42000B,
     "KeyMaterial": 0x420043, "CryptographicAlgorithm": 0x420028,
     "CryptographicLength": 0x42002A, "CryptographicUsageMask": 0x42002C}
OP_CREATE, OP_GET, OP_LOCATE, OP_DESTROY = 1, 10, 8, 20


def http_conf(extra=None):
    port = H.free_port()
    conf = {"http": {"listen": ["127.0.0.1:%d" % port]}}
    H.deep_merge(conf, extra or {})
    return conf, port


class Https:
    """An HTTPS client of the kmsd's http.listen port."""

    def __init__(self, k, port):
        self.k, self.port = k, port

    def conn(self, cert=True):
        return http.client.HTTPSConnection(self.k.host, self.port, timeout=10,
                                           context=self.k.ssl_context(cert=cert))

    def get(self, path, cert=True):
        c = self.conn(cert)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            c.close()

    def post(self, body, ctype, conn=None):
        c = conn or self.conn()
        try:
            c.request("POST", "/kmip", body=body, headers={"Content-Type": ctype})
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            if conn is None:
                c.close()

    def raw(self, cert=True):
        s = socket.create_connection((self.k.host, self.port), timeout=10)
        return self.k.ssl_context(cert=cert).wrap_socket(s, server_hostname="localhost")

    def metrics(self):
        status, ctype, body = self.get("/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, body)
        return body.decode()


def families(text):
    out = {}
    for fam in prom.text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(fams, name, **labels):
    return fams.get((name, tuple(sorted(labels.items()))), 0)


# ------------------------------------------------------- KMIP messages
def attr(name, typ, value):
    return H.item(T["Attribute"], H.STRUCT, [H.item(T["AttributeName"], H.TEXT, name),
                                          H.item(T["AttributeValue"], typ, value)])


def create_req():
    return H.request(H.batch_item(OP_CREATE, [
        H.item(T["ObjectType"], H.ENUM, 2),
        H.item(T["TemplateAttribute"], H.STRUCT, [
            attr("Cryptographic Algorithm", H.ENUM, 3),
            attr("Cryptographic Length", H.INT, 256),
            attr("Cryptographic Usage Mask", H.INT, 12)])]))


def uid_req(op, uid):
    return H.request(H.batch_item(op, [H.item(T["UniqueIdentifier"], H.TEXT, uid)]))


def locate_req():
    return H.request(H.batch_item(OP_LOCATE, [attr("Object Type", H.ENUM, 2)]))


# The profiles' names for what these requests hold.
NAMES = {0x420078: "RequestMessage", 0x420077: "RequestHeader", 0x420069: "ProtocolVersion",
         0x42006A: "ProtocolVersionMajor", 0x42006B: "ProtocolVersionMinor",
         0x42000D: "BatchCount", 0x42000F: "BatchItem", 0x42005C: "Operation",
         0x420079: "RequestPayload", 0x420094: "UniqueIdentifier", 0x420057: "ObjectType",
         0x420091: "TemplateAttribute", 0x420008: "Attribute", 0x42000A: "AttributeName",
         0x42000B: "AttributeValue"}
TYPES = {H.STRUCT: "Structure", H.INT: "Integer", H.ENUM: "Enumeration", H.TEXT: "TextString"}
OPS = {OP_CREATE: "Create", OP_GET: "Get", OP_LOCATE: "Locate", OP_DESTROY: "Destroy"}


def enum_text(tag, v):
    if tag == 0x42005C:
        return OPS[v]
    return "0x%08X" % v  # hex form: always allowed


def to_json(tree):
    out = []
    for tag, typ, v in tree:
        o = {"tag": NAMES[tag]}
        if typ == H.STRUCT:
            o["value"] = to_json(v)
        else:
            o["type"] = TYPES[typ]
            o["value"] = enum_text(tag, v) if typ == H.ENUM else v
        out.append(o)
    return out


def to_xml(tree, parent):
    for tag, typ, v in tree:
        e = ET.SubElement(parent, NAMES[tag])
        if typ == H.STRUCT:
            to_xml(v, e)
        else:
            e.set("type", TYPES[typ])
            e.set("value", enum_text(tag, v) if typ == H.ENUM else str(v))


def encode(msg, enc):
    if enc == "ttlv":
        return msg, "application/octet-stream"
    tree = H.decode(msg)
    if enc == "json":
        return json.dumps(to_json(tree)[0]).encode(), "application/json"
    root = ET.Element("x")
    to_xml(tree, root)
    return ET.tostring(root[0]), "text/xml"


def answer(resp, enc):
    """(statuses, unique ids, key material bytes) of a response in any encoding."""
    if enc == "ttlv":
        tree = H.decode(resp)
        return (H.find_all(tree, "ResultStatus"), H.find_all(tree, "UniqueIdentifier"),
                H.find_all(tree, T["KeyMaterial"]))
    items = []
    if enc == "json":
        def walk(o):
            items.append((o["tag"], o.get("value")))
            if isinstance(o.get("value"), list):
                for c in o["value"]:
                    walk(c)
        walk(json.loads(resp))
    else:
        for e in ET.fromstring(resp).iter():
            items.append((e.tag, e.get("value")))
    status = [{"Success": 0, "OperationFailed": 1}.get(v, v) for t, v in items
              if t == "ResultStatus"]
    ids = [v for t, v in items if t == "UniqueIdentifier"]
    mat = [bytes.fromhex(v[2:] if v.startswith("0x") else v) for t, v in items
           if t == "KeyMaterial"]
    return status, ids, mat


# ---------------------------------------------------------------- tests
def test_metrics_health_and_curl(kmsd_factory):
    conf, port = http_conf()
    k = kmsd_factory(conf)
    h = Https(k, port)
    # Health needs no client certificate; metrics do.
    assert h.get("/healthz", cert=False)[:2] == (200, "application/json")
    st, _, body = h.get("/readyz", cert=False)
    assert st == 200 and json.loads(body) == {"status": "ready"}
    assert h.get("/metrics", cert=False)[0] == 403

    c = k.pykmip_client()
    from kmip.core import enums
    uids = [c.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(3)]
    c.get(uids[0])
    c.close()

    # curl shows them, and the Prometheus parser accepts every line.
    p = subprocess.run(["curl", "-sS", "--fail", "--cacert", k.ca, "--cert", k.cert, "--key",
                        k.key, "-k", "https://%s:%d/metrics" % (k.host, port)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    f1 = families(p.stdout)
    for name in ("kmsd_build_info", "kmsd_connections_open", "process_resident_memory_bytes",
                 "process_open_fds", "process_cpu_seconds_total", "kmsd_store_wal_bytes",
                 "kmsd_hsm_up", "kmsd_audit_backlog_records", "kmsd_store_commits_total"):
        assert any(n == name for n, _ in f1), name
    assert sample(f1, "kmsd_kmip_requests_total", operation="Create", result="success") == 3
    assert sample(f1, "kmsd_kmip_requests_total", operation="Get", result="success") == 1
    assert sample(f1, "kmsd_kmip_request_duration_seconds_count", operation="Create") == 3
    assert sample(f1, "kmsd_hsm_up") == 1 and sample(f1, "kmsd_ready") == 1
    assert sample(f1, "kmsd_objects", type="SymmetricKey", state="PreActive") == 3
    assert sample(f1, "kmsd_tls_handshakes_total", listener="kmip", type="full") >= 1
    assert sample(f1, "kmsd_store_commit_duration_seconds_count") >= 3
    assert sample(f1, "process_resident_memory_bytes") > 1 << 20
    assert re.search(r'^kmsd_build_info\{version="[0-9.]+",', p.stdout, re.M)
    # No label names a client or a key.
    assert uids[0] not in p.stdout and "admin" not in p.stdout

    # Counters move with requests.
    c = k.pykmip_client()
    for u in uids:
        c.get(u)
    c.close()
    f2 = families(h.metrics())
    assert sample(f2, "kmsd_kmip_requests_total", operation="Get", result="success") == 4
    assert (sample(f2, "kmsd_http_responses_total", route="/metrics", code="200") >
            sample(f1, "kmsd_http_responses_total", route="/metrics", code="200"))
    assert sample(f2, "kmsd_connections_accepted_total", listener="kmip") >= 2


def fingerprint(cert, colons=False):
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    fp = out.strip().split("=", 1)[1]
    return fp.upper() if colons else fp.replace(":", "").lower()


def scrape(k, port, certfile=None, keyfile=None, conn=None):
    """(status, body) of GET /metrics with the given certificate (None: the
    admin's the harness registered)."""
    c = conn or http.client.HTTPSConnection(
        k.host, port, timeout=10, context=k.ssl_context(certfile=certfile, keyfile=keyfile))
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        if conn is None:
            c.close()


def test_metrics_readers(kmsd_factory, tmp_path):
    conf, port = http_conf()
    k = kmsd_factory(conf, start=False)
    out = str(tmp_path / "certs")
    os.makedirs(out)

    def issue(name):
        subprocess.run([H.kmsctl_bin(), "pki", "issue-client", name, "--dir", k.dir,
                        "--out-dir", out], check=True, capture_output=True, timeout=120)
        return os.path.join(out, name + ".crt"), os.path.join(out, name + ".key")

    prom_crt, prom_key = issue("prometheus")
    other_crt, other_key = issue("other-prom")
    tenant_crt, tenant_key = issue("tenant-host")
    ops_crt, ops_key = issue("ops-admin")
    # Listed in the colon form `openssl x509 -fingerprint` prints, upper case.
    k.configure({"http": {"metrics_clients": [fingerprint(prom_crt, colons=True)]}})
    k.start()
    k.kmsctl("tenant", "add", "acme")
    k.kmsctl("client", "add", "--tenant", "acme", "--cert", tenant_crt)
    k.kmsctl("client", "add", "--tenant", "default", "--role", "admin", "--cert", ops_crt)

    c = http.client.HTTPSConnection(k.host, port, timeout=10, context=k.ssl_context(cert=False))
    c.request("GET", "/metrics")
    r = c.getresponse()
    none = (r.status, r.read())
    c.close()
    assert none == (403, b"forbidden\n"), none
    # A tenant's registered client and a CA-signed certificate nobody listed:
    # the same answer as no certificate.
    assert scrape(k, port, tenant_crt, tenant_key) == none
    assert scrape(k, port, other_crt, other_key) == none
    # The listed certificate (registered nowhere) and admins read it.
    st, body = scrape(k, port, prom_crt, prom_key)
    assert st == 200 and b"kmsd_kmip_requests_total" in body, (st, body[:200])
    assert scrape(k, port)[0] == 200
    # An admin removed while its connection stays open: refused at its next scrape.
    conn = http.client.HTTPSConnection(k.host, port, timeout=10,
                                       context=k.ssl_context(certfile=ops_crt, keyfile=ops_key))
    try:
        assert scrape(k, port, conn=conn)[0] == 200
        k.kmsctl("client", "remove", "ops-admin")
        assert scrape(k, port, conn=conn) == none
    finally:
        conn.close()
    # The refusals are counted, and logged with the reason for the operator.
    f = families(scrape(k, port, prom_crt, prom_key)[1].decode())
    assert sample(f, "kmsd_http_responses_total", route="/metrics", code="403") == 4
    assert "neither in http.metrics_clients nor a registered admin" in k.log_text()


@pytest.mark.parametrize("enc", ["ttlv", "json", "xml"])
def test_kmip_over_https(kmsd_factory, enc):
    conf, port = http_conf()
    k = kmsd_factory(conf)
    h = Https(k, port)
    ctype_of = {"ttlv": "application/octet-stream", "json": "application/json",
                "xml": "text/xml"}
    conn = h.conn()  # one keep-alive connection for the whole sequence

    def call(msg):
        body, ctype = encode(msg, enc)
        st, rtype, resp = h.post(body, ctype, conn)
        assert st == 200 and rtype == ctype_of[enc], (st, rtype, resp[:300])
        return answer(resp, enc)

    status, ids, _ = call(create_req())
    assert status == [0] and len(ids) == 1
    uid = ids[0]
    status, ids, mat = call(uid_req(OP_GET, uid))
    assert status == [0] and ids == [uid] and len(mat) == 1 and len(mat[0]) == 32
    # The same key through port 5696: same identity, same tenant.
    ttlv = k.send_ttlv(uid_req(OP_GET, uid))
    assert H.statuses(ttlv) == [0] and H.find_all(H.decode(ttlv), T["KeyMaterial"]) == mat
    status, ids, _ = call(locate_req())
    assert status == [0] and uid in ids
    status, ids, _ = call(uid_req(OP_DESTROY, uid))
    assert status == [0] and ids == [uid]
    status, _, _ = call(uid_req(OP_GET, uid))
    assert status == [1]
    conn.close()
    # Audited like port 5696, and logged as an HTTPS request.
    want = ["Create", "Get", "Get", "Locate", "Destroy", "Get"]
    deadline, ops = time.time() + 5, []
    while time.time() < deadline and ops[-6:] != want:
        time.sleep(0.05)
        with open(os.path.join(k.dir, "audit.log")) as f:
            ops = [json.loads(l)["operation"] for l in f if '"kind":"kmip"' in l]
    assert ops[-6:] == want
    assert re.search(r"op=Destroy batch=1 status=Success", k.log_text())


def test_https_client_certificates(kmsd_factory):
    conf, port = http_conf()
    k = kmsd_factory(conf)
    h = Https(k, port)
    body, ctype = encode(create_req(), "ttlv")
    c = h.conn(cert=False)
    c.request("POST", "/kmip", body=body, headers={"Content-Type": ctype})
    r = c.getresponse()
    assert r.status == 403 and b"client certificate" in r.read()
    c.close()
    # A certificate from another CA fails the handshake.
    other = kmsd_factory(start=False)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        s = socket.create_connection((k.host, port), timeout=5)
        ctx = k.ssl_context(certfile=other.cert, keyfile=other.key)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert t.recv(100)
    # HSM-down pauses only the KMIP port; the HTTPS port is another listener.
    assert h.get("/healthz", cert=False)[0] == 200


def read_responses(s, n, timeout=5):
    """n HTTP responses (status codes) from a raw socket, in order."""
    s.settimeout(timeout)
    buf, codes = b"", []
    while len(codes) < n:
        m = re.match(rb"HTTP/1\.1 (\d+) [^\r]*\r\n(.*?)\r\n\r\n", buf, re.S)
        if m:
            ln = int(re.search(rb"Content-Length: (\d+)", m.group(2)).group(1))
            if len(buf) >= m.end() + ln:
                codes.append(int(m.group(1)))
                buf = buf[m.end() + ln:]
                continue
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return codes


def test_bad_http_refused(kmsd_factory):
    conf, port = http_conf({"http": {"max_header": "1KiB", "max_body": "4KiB"},
                            "limits": {"message_timeout": "1s", "max_pending_output": "16KiB"}})
    k = kmsd_factory(conf)
    h = Https(k, port)
    # Oversized headers: 431, then closed.
    s = h.raw()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert read_responses(s, 1) == [431]
    assert H.closed_by_peer(s)
    # Wrong Content-Type: 415; body over http.max_body: 413; garbage: 400.
    assert h.post(b"{}", "text/plain")[0] == 415
    assert h.post(b"x" * 5000, "application/json")[0] == 413
    s = h.raw()
    s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
    assert read_responses(s, 1) == [400] and H.closed_by_peer(s)
    # Unknown path 404, wrong method 405.
    assert h.get("/nope")[0] == 404
    c = h.conn()
    c.request("DELETE", "/metrics")
    r = c.getresponse()
    assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"
    c.close()
    # Slowloris: a request trickled byte by byte is closed at message_timeout.
    s = h.raw()
    t0 = time.time()
    closed = False
    for ch in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
        try:
            s.sendall(bytes([ch]))
        except OSError:
            closed = True
            break
        time.sleep(0.1)
    assert closed or H.closed_by_peer(s, 3)
    assert time.time() - t0 < 4.5
    assert "timeout: limits.message_timeout" in k.log_text()
    # Pipelined requests are answered in order on one connection.
    s = h.raw()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2 +
              b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n" +
              b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_responses(s, 4) == [200, 200, 404]  # closed after the error
    s.close()
    # Pipelining without reading: kmsd stops reading, then closes the
    # connection when the client reads nothing for message_timeout.
    s = h.raw()
    s.setblocking(False)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 200
    sent, t0 = 0, time.time()
    while time.time() - t0 < 6:
        try:
            sent += s.send(req)
        except (BlockingIOError, ssl.SSLWantWriteError):
            time.sleep(0.05)
        except OSError:
            break
    k.wait_log(r"client not reading|limits.message_timeout", timeout=5)
    s.close()
    # Still serving everyone else.
    assert h.get("/healthz", cert=False)[0] == 200


def test_readyz_follows_the_hsm(kmsd_factory, token):  # noqa: F811
    conf, port = http_conf()
    k = pkcs11_kmsd(lambda o, start: kmsd_factory(H.deep_merge(o, conf), start=start), token)
    h = Https(k, port)
    assert h.get("/readyz", cert=False)[0] == 200
    token.remove()
    deadline, st = time.time() + 5, None
    while time.time() < deadline:
        st, _, body = h.get("/readyz", cert=False)
        if st == 503:
            break
        time.sleep(0.1)
    assert st == 503, body
    assert json.loads(body) == {"status": "not ready", "reason": "hsm: master key unreachable"}
    assert h.get("/healthz", cert=False)[0] == 200  # alive, not ready
    assert sample(families(h.metrics()), "kmsd_hsm_up") == 0
    token.restore()
    deadline = time.time() + 15
    while time.time() < deadline and h.get("/readyz", cert=False)[0] != 200:
        time.sleep(0.2)
    assert h.get("/readyz", cert=False)[0] == 200
