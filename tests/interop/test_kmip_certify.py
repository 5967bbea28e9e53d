"""tests/interop/test_kmip_certify.py: Certify and Re-certify through a real kmsd.

PyKMIP's client has no Certify, so the requests are raw TTLV (the harness's
encoder); the key pair is made and the certificate read back with PyKMIP.
The certificates are checked with OpenSSL's command line: they chain to the
issuing CA `kmsctl init` made (pki/certify-ca.crt) and never to the CA kmsd
trusts for its clients, so a certificate a tenant obtains does not open a
session; kmsd refuses to start with an issuing CA it trusts. A CRMF request
is written here from RFC 4211's ASN.1 (an encoder independent of OpenSSL's).
Validate (raw TTLV too) answers the Validity Indicator for issued certificates and for a
chain made with the openssl command line.
"""
import os
import subprocess
import tempfile
import time

import pytest

import kmsd_harness as h


OP_CERTIFY, OP_RECERTIFY, OP_GET_ATTRIBUTES = 0x06, 0x07, 0x0B
T_CERT_REQ, T_CERT_REQ_TYPE = 0x420018, 0x420019
T_TEMPLATE_ATTRIBUTE, T_ATTRIBUTE, T_ATTR_NAME, T_ATTR_VALUE = 0x420091, 0x420008, 0x42000A, 0x42000B
T_CERT_SUBJECT_DN, T_OFFSET = 0x42001C, 0x420058
T_LINK_TYPE, T_LINKED_ID = 0x42004B, 0x42004C
PKCS10 = 2
SUCCESS, FAILED = 0, 1


def subject_attr(dn):
    return h.item(T_ATTRIBUTE, h.STRUCT, [
        h.item(T_ATTR_NAME, h.TEXT, "Certificate Subject"),
        h.item(T_ATTR_VALUE, h.STRUCT, [h.item(T_CERT_SUBJECT_DN, h.TEXT, dn)])])


def call(k, op, payload, sock=None):
    resp = h.decode(k.send_ttlv(h.request(h.batch_item(op, payload), minor=4), sock=sock))
    status = h.find_all(resp, "ResultStatus")[0]
    reason = (h.find_all(resp, "ResultReason") or [None])[0]
    uid = (h.find_all(resp, "UniqueIdentifier") or [None])[0]
    return status, reason, uid, resp


def links(k, uid):
    _, _, _, resp = call(k, OP_GET_ATTRIBUTES, [h.item("UniqueIdentifier", h.TEXT, uid),
                                               h.item(T_ATTR_NAME, h.TEXT, "Link")])
    return {t: i for t, i in zip(h.find_all(resp, T_LINK_TYPE), h.find_all(resp, T_LINKED_ID))}


def openssl(*args, check=True):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=check)


def cert_pem(client, uid, d):
    der = client.get(uid).value
    path = os.path.join(d, uid + ".der")
    with open(path, "wb") as f:
        f.write(der)
    pem = path[:-4] + ".pem"
    openssl("x509", "-inform", "DER", "-in", path, "-out", pem)
    return pem


def certify_new_pair(k, c, dn):
    """An RSA-2048 key pair made with PyKMIP's client c, its public key certified
    (raw Certify) with subject dn; (public key id, certificate id)."""
    from kmip.core import enums
    pub, _priv = c.create_key_pair(enums.CryptographicAlgorithm.RSA, 2048)
    st, reason, cert, _ = call(k, OP_CERTIFY, [
        h.item("UniqueIdentifier", h.TEXT, pub),
        h.item(T_TEMPLATE_ATTRIBUTE, h.STRUCT, [subject_attr(dn)])])
    assert (st, reason) == (SUCCESS, None)
    return pub, cert


def test_certify_and_recertify_chain_to_the_issuing_ca(kmsd):
    d = tempfile.mkdtemp(prefix="certify-")
    certify_ca = os.path.join(kmsd.dir, "pki", "certify-ca.crt")
    c = kmsd.pykmip_client()
    try:
        pub, cert = certify_new_pair(kmsd, c, "CN=db01.example.com, O=Ex")
        pem = cert_pem(c, cert, d)
        assert openssl("verify", "-CAfile", certify_ca, pem).returncode == 0
        # Not a kmsd credential: the client CA does not vouch for it.
        assert openssl("verify", "-CAfile", kmsd.ca, pem, check=False).returncode != 0
        text = openssl("x509", "-in", pem, "-noout", "-text").stdout
        assert "CN = db01.example.com" in text and "CA:FALSE" in text
        assert links(kmsd, cert)[0x102] == pub          # Public Key Link
        assert links(kmsd, pub)[0x101] == cert          # Certificate Link

        # Re-certify with an Offset, from another connection.
        st, reason, new, _ = call(kmsd, OP_RECERTIFY, [h.item("UniqueIdentifier", h.TEXT, cert),
                                                       h.item(T_OFFSET, h.INTERVAL, 86400)])
        assert (st, reason) == (SUCCESS, None) and new != cert
        assert links(kmsd, cert)[0x106] == new          # Replacement Object Link
        assert links(kmsd, new)[0x107] == cert          # Replaced Object Link
        assert links(kmsd, pub)[0x101] == new
        pem2 = cert_pem(c, new, d)
        assert openssl("verify", "-CAfile", certify_ca, "-attime",
                       str(int(time.time()) + 2 * 86400), pem2).returncode == 0
    finally:
        c.close()


def test_a_certified_csr_opens_no_session(kmsd):
    """A tenant asks for CN=admin with clientAuth and the peer role; the
    certificate it gets is refused by kmsd's own TLS listener."""
    d = tempfile.mkdtemp(prefix="certify-")
    key, csr = os.path.join(d, "k.pem"), os.path.join(d, "r.der")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-subj", "/CN=admin", "-outform", "DER", "-out", csr,
            "-addext", "extendedKeyUsage=clientAuth,2.25.328670954439281658831151738066534397793")
    with open(csr, "rb") as f:
        der = f.read()
    st, reason, cert, _ = call(kmsd, OP_CERTIFY, [h.item(T_CERT_REQ_TYPE, h.ENUM, PKCS10),
                                                  h.item(T_CERT_REQ, h.BYTES, der)])
    assert (st, reason) == (SUCCESS, None)
    c = kmsd.pykmip_client()
    try:
        pem = cert_pem(c, cert, d)
    finally:
        c.close()
    text = openssl("x509", "-in", pem, "-noout", "-text").stdout
    assert "2.25.328670954439281658831151738066534397793" not in text
    assert "TLS Web Client Authentication" in text
    with pytest.raises(Exception):
        s = kmsd.raw_tls(certfile=pem, keyfile=key)
        try:
            # TLS 1.3 reports a refused client certificate on the first read.
            kmsd.send_ttlv(h.discover_versions_request(), sock=s)
        finally:
            s.close()


# --------------------------------------------------------------------- CRMF
def der(tag, body):
    """One DER TLV (definite length)."""
    n = len(body)
    if n < 0x80:
        ln = bytes([n])
    else:
        nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
        ln = bytes([0x80 | len(nb)]) + nb
    return bytes([tag]) + ln + body


def crmf_request(key, cn, signer):
    """RFC 4211 CertReqMessages with one CertReqMsg, written here from the ASN.1
    (not by OpenSSL): CertTemplate with subject [5] and publicKey [6], and a
    signature proof of possession (POPOSigningKey [1], ECDSA with SHA-256) over the
    DER of the CertRequest, made with `signer`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]).public_bytes()
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    spki_body = spki[2:] if spki[1] < 0x80 else spki[2 + (spki[1] & 0x7F):]
    template = der(0x30, der(0xA5, name) + der(0xA6, spki_body))
    cert_request = der(0x30, der(0x02, b"\x00") + template)
    sig = signer.sign(cert_request, ec.ECDSA(hashes.SHA256()))
    ecdsa_sha256 = der(0x30, der(0x06, bytes.fromhex("2a8648ce3d040302")))
    popo = der(0xA1, ecdsa_sha256 + der(0x03, b"\x00" + sig))
    return der(0x30, der(0x30, cert_request + popo))


def test_certify_crmf_request(kmsd):
    """A CRMF request built in the test: certified (chains to the issuing CA, the
    requested subject and key); its proof of possession signed with another key is
    Cryptographic Failure; PGP requests are Feature Not Supported."""
    from cryptography.hazmat.primitives.asymmetric import ec
    CRMF, PGP = 1, 4
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    req = crmf_request(key, "crmf.example.com", key)
    st, reason, cert, _ = call(kmsd, OP_CERTIFY, [h.item(T_CERT_REQ_TYPE, h.ENUM, CRMF),
                                                  h.item(T_CERT_REQ, h.BYTES, req)])
    assert (st, reason) == (SUCCESS, None)
    d = tempfile.mkdtemp(prefix="crmf-")
    c = kmsd.pykmip_client()
    try:
        pem = cert_pem(c, cert, d)
    finally:
        c.close()
    certify_ca = os.path.join(kmsd.dir, "pki", "certify-ca.crt")
    assert openssl("verify", "-CAfile", certify_ca, pem).returncode == 0
    assert "CN = crmf.example.com" in openssl("x509", "-in", pem, "-noout", "-subject").stdout
    from cryptography import x509
    with open(pem, "rb") as f:
        issued = x509.load_pem_x509_certificate(f.read())
    assert issued.public_key().public_numbers() == key.public_key().public_numbers()

    forged = crmf_request(key, "crmf.example.com", other)
    st, reason, _, _ = call(kmsd, OP_CERTIFY, [h.item(T_CERT_REQ_TYPE, h.ENUM, CRMF),
                                               h.item(T_CERT_REQ, h.BYTES, forged)])
    assert (st, reason) == (FAILED, 0x0A)       # Cryptographic Failure
    st, reason, _, _ = call(kmsd, OP_CERTIFY, [h.item(T_CERT_REQ_TYPE, h.ENUM, PGP),
                                               h.item(T_CERT_REQ, h.BYTES, b"\x99\x00\x0d")])
    assert (st, reason) == (FAILED, 0x08)       # Feature Not Supported


def test_a_reload_that_would_trust_the_issuing_ca_is_refused(kmsd):
    """SIGHUP with a client CA bundle that now holds certify-ca.crt: the
    reload is refused and the running TLS context stays."""
    bundle = os.path.join(kmsd.dir, "pki", "bundle.crt")
    with open(bundle, "w") as out:
        for f in ("ca.crt", "certify-ca.crt"):
            with open(os.path.join(kmsd.dir, "pki", f)) as src:
                out.write(src.read())
    start = len(kmsd.log_text())
    kmsd.configure({"tls": {"client_ca": bundle}})
    kmsd.reload()
    kmsd.wait_log("reload refused, keeping the running configuration", start=start)
    assert "trusted by tls.client_ca" in kmsd.log_text()[start:]
    # Still serving, with the old context.
    assert h.statuses(kmsd.send_ttlv(h.discover_versions_request())) == [SUCCESS]


def test_kmsd_refuses_an_issuing_ca_it_trusts(tmp_path):
    k = h.Kmsd(tmp_path, {"certify": {"ca": "pki/ca.crt", "ca_key": "pki/ca.key"}}, start=False)
    p = subprocess.run([h.kmsd_bin(), "-c", k.conf_path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "trusted by tls.client_ca" in p.stdout + p.stderr


# ------------------------------------------------------------------ Validate
OP_VALIDATE = 0x17
T_CERTIFICATE, T_CERT_TYPE, T_CERT_VALUE = 0x420013, 0x42001D, 0x42001E
T_VALIDITY_DATE, T_VALIDITY_INDICATOR = 0x42009A, 0x42009B
VALID, INVALID, UNKNOWN = 1, 2, 3


def make_chain(d):
    """root -> intermediate CA -> leaf (valid 30 days) with the openssl command line;
    the DER of each."""
    ext = os.path.join(d, "ca.ext")
    with open(ext, "w") as f:
        f.write("[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "[leaf]\nbasicConstraints=critical,CA:FALSE\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    p = lambda n: os.path.join(d, n)  # noqa: E731
    openssl("req", "-x509", *ec, "-keyout", p("root.key"), "-subj", "/CN=Validate Root",
            "-days", "3650", "-out", p("root.pem"), "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, issuer, days, section in (("inter", "root", "1000", "ca"), ("leaf", "inter", "30", "leaf")):
        openssl("req", "-new", *ec, "-keyout", p(name + ".key"), "-subj", "/CN=Validate " + name,
                "-out", p(name + ".csr"))
        openssl("x509", "-req", "-in", p(name + ".csr"), "-CA", p(issuer + ".pem"), "-CAkey",
                p(issuer + ".key"), "-CAcreateserial", "-days", days, "-extfile", ext,
                "-extensions", section, "-out", p(name + ".pem"))
    ders = {}
    for name in ("root", "inter", "leaf"):
        openssl("x509", "-in", p(name + ".pem"), "-outform", "DER", "-out", p(name + ".der"))
        with open(p(name + ".der"), "rb") as f:
            ders[name] = f.read()
    return ders


def validate(k, by_value=(), ids=(), when=None):
    payload = [h.item(T_CERTIFICATE, h.STRUCT, [h.item(T_CERT_TYPE, h.ENUM, 1),
                                                h.item(T_CERT_VALUE, h.BYTES, der)])
               for der in by_value]
    payload += [h.item("UniqueIdentifier", h.TEXT, i) for i in ids]
    if when is not None:
        payload.append(h.item(T_VALIDITY_DATE, h.DATE, when))
    st, reason, _, resp = call(k, OP_VALIDATE, payload)
    assert (st, reason) == (SUCCESS, None), resp
    return h.find_all(resp, T_VALIDITY_INDICATOR)[0]


def test_validate_chains(kmsd):
    """Validate over TLS: a certificate from Certify (the issuing CA anchors it), a
    chain made with openssl whose root the client registered (Valid), sent by value
    only (Unknown), at a Validity Date past the leaf's end (Invalid); Query lists it."""
    from kmip.pie import objects
    d = tempfile.mkdtemp(prefix="validate-")
    ders = make_chain(d)
    c = kmsd.pykmip_client()
    try:
        _pub, cert = certify_new_pair(kmsd, c, "CN=validated.example.com")
        assert validate(kmsd, ids=[cert]) == VALID
        root = c.register(objects.X509Certificate(ders["root"]))
    finally:
        c.close()
    assert validate(kmsd, [ders["leaf"], ders["inter"]], [root]) == VALID
    assert validate(kmsd, [ders["leaf"], ders["inter"], ders["root"]]) == UNKNOWN
    assert validate(kmsd, [ders["leaf"], ders["inter"]], [root],
                    when=int(time.time()) + 40 * 86400) == INVALID
    resp = h.decode(kmsd.send_ttlv(h.request(h.batch_item(h.OP_QUERY, [
        h.item("QueryFunction", h.ENUM, 1)]), minor=4)))
    assert h.find_all(resp, "Operation").count(OP_VALIDATE) == 1


# ------------------------------------------------------- a cluster's issuing CA
def certify_csr_on(k, d, cn):
    """Certify a fresh PKCS#10 request on node k; the issued certificate's PEM path."""
    key, csr = os.path.join(d, cn + ".key"), os.path.join(d, cn + ".der")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-subj", "/CN=" + cn, "-outform", "DER", "-out", csr)
    with open(csr, "rb") as f:
        der = f.read()
    st, reason, cert, _ = call(k, OP_CERTIFY, [h.item(T_CERT_REQ_TYPE, h.ENUM, PKCS10),
                                               h.item(T_CERT_REQ, h.BYTES, der)])
    assert (st, reason) == (SUCCESS, None), (k.node_id, reason)
    c = k.pykmip_client()
    try:
        return cert_pem(c, cert, d)
    finally:
        c.close()


def test_joined_nodes_certify_with_the_inviters_ca(tmp_path):
    """`kmsctl cluster join` copies the inviter's issuing CA (key mode 0600, never in a
    log): Certify on either node of an invited cluster chains to the same CA."""
    nodes = h.form_cluster(tmp_path, 2)
    try:
        a, b = nodes
        pki_a, pki_b = os.path.join(a.dir, "pki"), os.path.join(b.dir, "pki")
        with open(os.path.join(pki_a, "certify-ca.crt"), "rb") as fa, \
                open(os.path.join(pki_b, "certify-ca.crt"), "rb") as fb:
            assert fa.read() == fb.read()
        assert os.stat(os.path.join(pki_b, "certify-ca.key")).st_mode & 0o777 == 0o600
        assert b.config()["certify"]["ca_key"] == "pki/certify-ca.key"
        assert "issuing CA      pki/certify-ca.crt" in b.setup_output
        with open(os.path.join(pki_a, "certify-ca.key")) as f:
            secret_lines = [ln for ln in f.read().splitlines() if ln and "-----" not in ln]
        d = tempfile.mkdtemp(prefix="certify-cluster-")
        issuers = set()
        for k in nodes:
            pem = certify_csr_on(k, d, "app-" + k.node_id)
            assert openssl("verify", "-CAfile", os.path.join(pki_a, "certify-ca.crt"),
                           pem).returncode == 0
            issuers.add(openssl("x509", "-in", pem, "-noout", "-issuer").stdout)
            log = k.log_text()
            assert not any(ln in log for ln in secret_lines)
        assert len(issuers) == 1
    finally:
        h.stop_cluster(nodes)


def test_a_node_joined_to_an_inviter_without_issuing_ca_has_none(tmp_path):
    a = h.Kmsd(tmp_path / "a", {"certify": {"ca": "", "ca_key": ""}}, start=False, peer=True,
               node_id="a")
    b = None
    try:
        a.start()
        b = h.Kmsd(tmp_path / "b", None, start=False, join=a.invite(), node_id="b", client_of=a)
        assert not os.path.exists(os.path.join(b.dir, "pki", "certify-ca.key"))
        assert not (b.config().get("certify") or {}).get("ca")
        assert "issuing CA      none" in b.setup_output
        b.start(120)
        resp = h.decode(b.send_ttlv(h.request(h.batch_item(h.OP_QUERY, [
            h.item("QueryFunction", h.ENUM, 1)]), minor=4)))
        assert OP_CERTIFY not in h.find_all(resp, "Operation")
    finally:
        h.stop_cluster([k for k in (a, b) if k])
