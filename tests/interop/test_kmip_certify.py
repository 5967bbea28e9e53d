"""tests/interop/test_kmip_certify.py: Certify and Re-certify through a real kmsd.

PyKMIP's client has no Certify, so the requests are raw TTLV (the harness's
encoder); the key pair is made and the certificate read back with PyKMIP.
The certificates are checked with OpenSSL's command line: they chain to the
issuing CA `kmsctl init` made (pki/certify-ca.crt) and never to the CA kmsd
trusts for its clients, so a certificate a tenant obtains does not open a
session; kmsd refuses to start with an issuing CA it trusts.
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


def test_certify_and_recertify_chain_to_the_issuing_ca(kmsd):
    from kmip.core import enums
    d = tempfile.mkdtemp(prefix="certify-")
    certify_ca = os.path.join(kmsd.dir, "pki", "certify-ca.crt")
    c = kmsd.pykmip_client()
    try:
        pub, _priv = c.create_key_pair(enums.CryptographicAlgorithm.RSA, 2048)
        st, reason, cert, _ = call(kmsd, OP_CERTIFY, [
            h.item("UniqueIdentifier", h.TEXT, pub),
            h.item(T_TEMPLATE_ATTRIBUTE, h.STRUCT, [subject_attr("CN=db01.example.com, O=Ex")])])
        assert (st, reason) == (SUCCESS, None)
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
