"""tests/interop/test_server_tls.py: kmsd's TLS layer against clients we did
not write (PyKMIP, Python's ssl module on OpenSSL).

- Discover Versions and Query through PyKMIP over mutual TLS 1.2 and 1.3;
- refusals at the handshake: no client certificate, a certificate from
  another CA, an expired certificate, TLS 1.0/1.1 offers, a client offering
  only weak (CBC, RSA key exchange) suites; each refusal is logged by kmsd and
  a normal client is served right after;
- session resumption (tickets) works, renegotiation is not offered.
"""
import datetime
import os
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kmip.core import enums

import kmsd_harness as h


def _served(k):
    """A normal client gets a Discover Versions answer."""
    r = k.send_ttlv(h.discover_versions_request())
    assert h.statuses(r) == [h.STATUS_SUCCESS]


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_pykmip_discover_and_query(kmsd, tls):
    c = kmsd.pykmip_client(tls)
    try:
        versions = c.proxy.discover_versions().protocol_versions
        assert versions, "no protocol versions"
        assert any(v.major == 1 and v.minor == 1 for v in versions)
        q = c.proxy.query(query_functions=[enums.QueryFunction.QUERY_OPERATIONS,
                                           enums.QueryFunction.QUERY_OBJECTS,
                                           enums.QueryFunction.QUERY_SERVER_INFORMATION])
        assert q.result_status.value == enums.ResultStatus.SUCCESS
        ops = {enums.Operation(o.value) if isinstance(o.value, int) else o.value
               for o in q.operations}
        assert enums.Operation.CREATE in ops and enums.Operation.GET in ops
        assert "kmsd" in (q.vendor_identification or "")
        # The negotiated version really is the one asked for.
        assert c.proxy.socket.version() == ("TLSv1.2" if tls == "1.2" else "TLSv1.3")
    finally:
        c.close()
    kmsd.wait_log(r"tls TLSv1\.%s .* cn=admin" % tls[-1])
    kmsd.wait_log(r"op=Query .*status=Success")


def _refused(k, **ctx_kw):
    """Connect with the given client settings; True when kmsd refuses.

    With TLS 1.3 the client may finish its side of the handshake before the
    server checks the certificate, so the refusal then shows on first read."""
    ctx = ctx_kw.pop("ctx", None) or k.ssl_context(**ctx_kw)
    s = k.raw_tcp()
    try:
        t = ctx.wrap_socket(s, server_hostname="localhost")
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        t.sendall(h.discover_versions_request())
        h.read_response(t)
        return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    finally:
        t.close()


def _make_cert(path_crt, path_key, issuer_cert, issuer_key, cn, not_before, not_after,
               server=False):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer_cert.subject if issuer_cert else subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before)
         .not_valid_after(not_after))
    if issuer_cert is None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
        signer = key
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        eku = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        if server:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.DNSName(cn)]), critical=False)
        signer = issuer_key
    cert = b.sign(signer, hashes.SHA256())
    with open(path_crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path_key, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path_key, 0o600)
    return cert, key


def load_ca(k):
    with open(k.ca, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(k.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    return ca, ca_key


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def test_refuse_no_client_certificate(kmsd):
    assert _refused(kmsd, cert=False, version="1.3")
    assert _refused(kmsd, cert=False, version="1.2")
    kmsd.wait_log(r"tls handshake failed.*(peer did not return a certificate|certificate)")
    _served(kmsd)


def test_refuse_certificate_from_other_ca(kmsd, tmp_path):
    now = _now()
    other_ca, other_key = _make_cert(str(tmp_path / "o.crt"), str(tmp_path / "o.key"), None,
                                     None, "Other CA", now - datetime.timedelta(days=1),
                                     now + datetime.timedelta(days=30))
    _make_cert(str(tmp_path / "c.crt"), str(tmp_path / "c.key"), other_ca, other_key, "admin",
               now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    for v in ("1.2", "1.3"):
        assert _refused(kmsd, version=v, certfile=str(tmp_path / "c.crt"),
                        keyfile=str(tmp_path / "c.key"))
    kmsd.wait_log(r"tls handshake failed.*certificate: unable to get local issuer certificate")
    _served(kmsd)


def test_refuse_expired_certificate(kmsd, tmp_path):
    ca, ca_key = load_ca(kmsd)
    now = _now()
    _make_cert(str(tmp_path / "e.crt"), str(tmp_path / "e.key"), ca, ca_key, "admin",
               now - datetime.timedelta(days=30), now - datetime.timedelta(days=1))
    for v in ("1.2", "1.3"):
        assert _refused(kmsd, version=v, certfile=str(tmp_path / "e.crt"),
                        keyfile=str(tmp_path / "e.key"))
    kmsd.wait_log(r"tls handshake failed.*certificate has expired")
    _served(kmsd)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_refuse_old_tls_versions(kmsd, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(kmsd.cert, kmsd.key)
    # Let this client really offer the old version (Debian's default
    # security level would stop it before the server is asked).
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = version
    assert _refused(kmsd, ctx=ctx)
    kmsd.wait_log(r"tls handshake failed.*(unsupported protocol|version)")
    _served(kmsd)


def test_refuse_weak_cipher_only_client(kmsd):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(kmsd.cert, kmsd.key)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA:AES256-SHA:AES128-SHA256:@SECLEVEL=0")  # RSA kx, CBC
    assert _refused(kmsd, ctx=ctx)
    kmsd.wait_log(r"tls handshake failed.*no shared cipher")
    _served(kmsd)


def test_session_resumption(kmsd):
    ctx = kmsd.ssl_context(version="1.2")
    s1 = ctx.wrap_socket(kmsd.raw_tcp(), server_hostname="localhost")
    s1.sendall(h.discover_versions_request())
    h.read_response(s1)
    sess = s1.session
    s1.close()
    s2 = ctx.wrap_socket(kmsd.raw_tcp(), server_hostname="localhost", session=sess)
    try:
        assert s2.session_reused
        s2.sendall(h.discover_versions_request())
        assert h.statuses(h.read_response(s2)) == [h.STATUS_SUCCESS]
    finally:
        s2.close()
    kmsd.wait_log(r"tls TLSv1\.2 \S+ resumed")


def test_min_version_13_refuses_12(kmsd_factory):
    k = kmsd_factory({"tls": {"min_version": "1.3"}})
    assert _refused(k, version="1.2")
    k.wait_log(r"tls handshake failed.*(unsupported protocol|version)")
    s = k.raw_tls(version="1.3")
    try:
        assert s.version() == "TLSv1.3"
    finally:
        s.close()


def test_optional_client_auth(kmsd_factory, tmp_path):
    """optional: no certificate is allowed at the TLS level (the KMIP
    Credential must then identify the client); a presented one must verify."""
    k = kmsd_factory({"tls": {"client_auth": "optional"}})
    s = k.raw_tls(cert=False)
    try:
        resp = k.send_ttlv(h.discover_versions_request(), sock=s)
        assert h.statuses(resp), "no answer over a certificate-less connection"
    finally:
        s.close()
    k.wait_log(r"tls TLSv1\.3 \S+ cn=- sha256=-")
    now = _now()
    other_ca, other_key = _make_cert(str(tmp_path / "o.crt"), str(tmp_path / "o.key"), None,
                                     None, "Other CA", now - datetime.timedelta(days=1),
                                     now + datetime.timedelta(days=30))
    _make_cert(str(tmp_path / "c.crt"), str(tmp_path / "c.key"), other_ca, other_key, "admin",
               now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    assert _refused(k, certfile=str(tmp_path / "c.crt"), keyfile=str(tmp_path / "c.key"))
    _served(k)
