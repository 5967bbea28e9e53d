"""tests/interop/test_kmsctl_vcenter_trust.py: the trust set-ups of docs/vcenter.md,
each ending in a KMIP 1.1 client over TLS 1.2 (as vCenter connects) that
creates and gets an AES-256 key in tenant `vcenter` and is refused nothing.

- vCenter trusts kmsd: `kmsctl ca export` verifies the server certificate,
  which names the --host given to init;
- method A: a CSR made with `openssl req` (vCenter's stand-in) signed and
  registered in one step (`client add --csr`) and in two (`pki sign-csr`,
  `client add --cert`);
- method B: `pki issue-client` into an --out-dir, then `client add --cert`;
- method C: a self-signed certificate (vCenter's own) appended to the
  client CA bundle, SIGHUP, registered by CN;
- before registration each identity is refused (Authentication Not
  Successful), and a vCenter client sees only its tenant's keys.
- method C pinned: the same certificate registered by fingerprint with
  `client add --cert`, checked against every CA of the bundle.
"""
import os
import subprocess

import pytest

import kmsd_harness

from kmip import enums  # noqa: E402
from kmip.core.enums import KMIPVersion  # noqa: E402
from kmip.pie import exceptions  # noqa: E402
from kmip.pie.client import ProxyKmipClient  # noqa: E402


def kmsctl(k, *args, check=0):
    p = subprocess.run([kmsd_harness.kmsctl_bin(), "--config", k.conf_path, *args],
                       capture_output=True, text=True, timeout=120)
    if check is not None:
        assert p.returncode == check, "kmsctl %s -> %d\n%s%s" % (" ".join(args), p.returncode,
                                                                   p.stdout, p.stderr)
    return p


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def vcenter_client(k, cert, key):
    c = ProxyKmipClient(hostname=k.host, port=k.port, cert=cert, key=key, ca=k.ca,
                        ssl_version="PROTOCOL_TLSv1_2", kmip_version=KMIPVersion.KMIP_1_1)
    c.open()
    return c


def create_and_get(k, cert, key):
    c = vcenter_client(k, cert, key)
    try:
        uid = c.create(enums.CryptographicAlgorithm.AES, 256)
        assert len(c.get(uid).value) == 32
        return uid
    finally:
        c.close()


def refused(k, cert, key):
    c = vcenter_client(k, cert, key)
    try:
        with pytest.raises(exceptions.KmipOperationFailure, match="AUTHENTICATION_NOT_SUCCESSFUL"):
            c.create(enums.CryptographicAlgorithm.AES, 256)
    finally:
        c.close()


@pytest.fixture
def kms(tmp_path):
    with kmsd_harness.server() as k:
        kmsctl(k, "tenant", "add", "vcenter")
        yield k, tmp_path


def test_vcenter_trusts_kmsd_ca(kms):
    k, tmp = kms
    pem = kmsctl(k, "ca", "export").stdout
    ca = tmp / "kmsd-ca.pem"
    ca.write_text(pem)
    with open(k.ca) as f:
        assert pem == f.read()
    openssl("verify", "-CAfile", str(ca), "-purpose", "sslserver", k.server_cert)


def test_method_a_csr(kms):
    k, tmp = kms
    key, csr, crt = tmp / "vc.key", tmp / "vc.csr", tmp / "vc.crt"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
            "-subj", "/CN=vcenter01.example.com", "-out", str(csr))
    out = kmsctl(k, "client", "add", "--tenant", "vcenter", "--csr", str(csr), "--out", str(crt)).stdout
    assert "vcenter01.example.com" in out and "vcenter" in out
    create_and_get(k, str(crt), str(key))
    # Two steps: sign, refused until registered, then registered.
    key2, csr2, crt2 = tmp / "vc2.key", tmp / "vc2.csr", tmp / "vc2.crt"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key2), "-subj", "/CN=vcenter02.example.com", "-out", str(csr2))
    kmsctl(k, "pki", "sign-csr", str(csr2), "--out", str(crt2))
    refused(k, str(crt2), str(key2))
    kmsctl(k, "client", "add", "--tenant", "vcenter", "--cert", str(crt2))
    create_and_get(k, str(crt2), str(key2))


def test_method_b_issue_client(kms):
    k, tmp = kms
    out_dir = tmp / "vc"
    out_dir.mkdir(mode=0o700)
    kmsctl(k, "pki", "issue-client", "vcenter01", "--out-dir", str(out_dir))
    crt, key = str(out_dir / "vcenter01.crt"), str(out_dir / "vcenter01.key")
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    refused(k, crt, key)
    kmsctl(k, "client", "add", "--tenant", "vcenter", "--cert", crt)
    uid = create_and_get(k, crt, key)
    # Tenant isolation: the admin (tenant default) key is not vCenter's, and
    # vCenter's key is not visible to another tenant's client.
    kmsctl(k, "tenant", "add", "other")
    kmsctl(k, "pki", "issue-client", "other01", "--out-dir", str(out_dir))
    kmsctl(k, "client", "add", "--tenant", "other", "--cert", str(out_dir / "other01.crt"))
    c = vcenter_client(k, str(out_dir / "other01.crt"), str(out_dir / "other01.key"))
    try:
        with pytest.raises(exceptions.KmipOperationFailure, match="ITEM_NOT_FOUND"):
            c.get(uid)
    finally:
        c.close()


def _self_signed(tmp):
    key, crt = tmp / "vc-own.key", tmp / "vc-own.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-days", "30",
            "-subj", "/CN=vcenter03.example.com", "-addext", "extendedKeyUsage=clientAuth",
            "-out", str(crt))
    return str(crt), str(key)


def test_method_c_own_certificate(kms):
    k, tmp = kms
    crt, key = _self_signed(tmp)
    # Not in the bundle yet: the handshake itself fails.
    with pytest.raises(Exception):
        create_and_get(k, crt, key)
    with open(k.ca, "a") as f, open(crt) as g:
        f.write(g.read())
    start = len(k.log_text())
    k.reload()
    k.wait_log(r"reloaded .*client CA", start=start)
    refused(k, crt, key)
    kmsctl(k, "client", "add", "--tenant", "vcenter", "--cn", "vcenter03.example.com")
    create_and_get(k, crt, key)


def test_method_c_pinned_certificate_from_second_ca(kms):
    k, tmp = kms
    crt, key = _self_signed(tmp)
    with open(k.ca, "a") as f, open(crt) as g:
        f.write(g.read())
    start = len(k.log_text())
    k.reload()
    k.wait_log(r"reloaded .*client CA", start=start)
    kmsctl(k, "client", "add", "--tenant", "vcenter", "--cert", crt)
    create_and_get(k, crt, key)
