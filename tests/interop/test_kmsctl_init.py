"""tests/interop/test_kmsctl_init.py: the first-run setup and the PKI commands
of kmsctl, checked with tools we did not write (the openssl CLI, sqlite3,
PyYAML).

Runs $KMSD_BUILD/kmsctl (default ../../build relative to this directory):
`init` into a temporary directory (files, modes, the chain with `openssl
verify`, SANs, the admin client registered in the database, refusal to
overwrite without --force, --force keeping the master key), then `pki
issue-client`, `pki sign-csr` (CSR made with `openssl req`, and a tampered
one) and `ca export`.
"""
import os
import re
import sqlite3
import stat
import subprocess

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.path.join(HERE, os.environ.get("KMSD_BUILD", "../../build")))
KMSCTL = os.path.join(BUILD, "kmsctl")


def kmsctl(*args, check=None):
    """Run kmsctl; returns CompletedProcess. check=N asserts the exit code."""
    assert os.access(KMSCTL, os.X_OK), "kmsctl not built at %s" % KMSCTL
    p = subprocess.run([KMSCTL, *args], capture_output=True, text=True, timeout=120)
    if check is not None:
        assert p.returncode == check, "kmsctl %s -> %d (want %d)\nstdout:%s\nstderr:%s" % (
            " ".join(args), p.returncode, check, p.stdout, p.stderr)
    return p


def openssl(*args, check=True, input=None):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60,
                       input=input)
    if check:
        assert p.returncode == 0, "openssl %s failed:\n%s%s" % (" ".join(args), p.stdout, p.stderr)
    return p


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def sha256_fp(cert):
    out = openssl("x509", "-in", cert, "-noout", "-fingerprint", "-sha256").stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def text_of(cert):
    return openssl("x509", "-in", cert, "-noout", "-text").stdout


def eku_of(cert):
    t = text_of(cert)
    m = re.search(r"X509v3 Extended Key Usage:.*\n\s*(.*)\n", t)
    return m.group(1).strip() if m else ""


def read(path, mode_="rb"):
    with open(path, mode_) as f:
        return f.read()


@pytest.fixture
def kms_dir(tmp_path):
    d = tmp_path / "kms"
    kmsctl("init", "--dir", str(d), "--listen", "127.0.0.1:15696",
           "--host", "kms.example.test", "--host", "10.9.8.7", check=0)
    return d


def test_init_files_and_modes(kms_dir):
    d = kms_dir
    assert mode(d) == 0o700
    assert mode(d / "pki") == 0o700
    for name in ("ca", "server", "client"):
        assert (d / "pki" / (name + ".crt")).is_file()
        key = d / "pki" / (name + ".key")
        assert mode(key) == 0o600, key
        assert read(key).startswith(b"-----BEGIN PRIVATE KEY-----")
    mk = d / "master.key"
    assert mode(mk) == 0o600
    assert len(read(mk)) == 32
    assert (d / "kms.db").is_file()
    assert mode(d / "kms.db") & 0o077 == 0
    # No temporary files left behind.
    leftovers = [p for p in d.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    # Default EC P-256 keys.
    t = openssl("pkey", "-in", str(d / "pki" / "ca.key"), "-noout", "-text").stdout
    assert "prime256v1" in t or "P-256" in t


def test_init_config(kms_dir):
    d = str(kms_dir)
    cfg = yaml.safe_load(read(os.path.join(d, "kmsd.yaml"), "r"))
    assert cfg["listen"] == ["127.0.0.1:15696"]

    def res(p):
        return os.path.normpath(os.path.join(d, p))

    assert res(cfg["tls"]["cert"]) == os.path.join(d, "pki/server.crt")
    assert res(cfg["tls"]["key"]) == os.path.join(d, "pki/server.key")
    assert res(cfg["tls"]["client_ca"]) == os.path.join(d, "pki/ca.crt")
    assert res(cfg["store"]["path"]) == os.path.join(d, "kms.db")
    assert cfg["hsm"]["provider"] == "file"
    assert res(cfg["hsm"]["key_file"]) == os.path.join(d, "master.key")
    assert res(cfg["admin"]["socket"]) == os.path.join(d, "admin.sock")
    assert res(cfg["audit"]["path"]) == os.path.join(d, "audit.log")
    assert cfg["log"]["level"] == "info"


def test_chain_verifies(kms_dir, tmp_path):
    pki = kms_dir / "pki"
    ca, srv, cli = str(pki / "ca.crt"), str(pki / "server.crt"), str(pki / "client.crt")
    openssl("verify", "-CAfile", ca, srv, cli)
    openssl("verify", "-purpose", "sslserver", "-CAfile", ca, srv)
    openssl("verify", "-purpose", "sslclient", "-CAfile", ca, srv)
    openssl("verify", "-purpose", "sslclient", "-CAfile", ca, cli)
    # The admin client certificate is not a server certificate.
    p = openssl("verify", "-purpose", "sslserver", "-CAfile", ca, cli, check=False)
    assert p.returncode != 0
    # Our client certificate does not verify against an unrelated CA.
    other = tmp_path / "other-ca.crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(tmp_path / "other-ca.key"), "-subj", "/CN=other", "-days", "2",
            "-out", str(other))
    p = openssl("verify", "-no-CApath", "-no-CAstore", "-CAfile", str(other), cli, check=False)
    assert p.returncode != 0

    t = text_of(srv)
    for san in ("DNS:kms.example.test", "IP Address:10.9.8.7", "IP Address:127.0.0.1",
                "DNS:localhost", "IP Address:0:0:0:0:0:0:0:1"):
        assert san in t, san
    assert eku_of(srv) == "TLS Web Server Authentication, TLS Web Client Authentication"
    assert eku_of(cli) == "TLS Web Client Authentication"
    assert "CA:TRUE" in text_of(ca)
    subj = openssl("x509", "-in", cli, "-noout", "-subject", "-nameopt", "RFC2253").stdout
    assert subj.strip() == "subject=CN=admin"
    # 128-bit random serials.
    serial = openssl("x509", "-in", cli, "-noout", "-serial").stdout.strip().split("=")[1]
    assert len(serial.lstrip("0")) >= 31


def test_admin_client_registered(kms_dir):
    fp = sha256_fp(str(kms_dir / "pki" / "client.crt"))
    db = sqlite3.connect("file:%s?mode=ro" % (kms_dir / "kms.db"), uri=True)
    try:
        rows = db.execute("SELECT name, tenant, role, kind, cert_sha256 FROM clients").fetchall()
        tenants = [r[0] for r in db.execute("SELECT name FROM tenants").fetchall()]
    finally:
        db.close()
    assert rows == [("admin", "default", "admin", "cert", fp)]
    assert "default" in tenants


def test_second_init_refused_then_force(kms_dir):
    d = kms_dir
    before = {p: read(d / p) for p in ("kmsd.yaml", "pki/ca.crt", "pki/ca.key", "master.key")}
    p = kmsctl("init", "--dir", str(d), check=1)
    assert "already exists" in p.stderr and "--force" in p.stderr
    for name, data in before.items():
        assert read(d / name) == data, name

    p = kmsctl("init", "--dir", str(d), "--force", "--listen", "127.0.0.1:15697", check=0)
    # New PKI, same master key (replacing it would orphan every stored key).
    assert read(d / "pki" / "ca.crt") != before["pki/ca.crt"]
    assert read(d / "master.key") == before["master.key"]
    assert "kept the existing master key" in p.stdout
    assert mode(d / "pki" / "ca.key") == 0o600
    cfg = yaml.safe_load(read(d / "kmsd.yaml", "r"))
    assert cfg["listen"] == ["127.0.0.1:15697"]
    # The admin client now maps to the new certificate, still one row.
    fp = sha256_fp(str(d / "pki" / "client.crt"))
    db = sqlite3.connect("file:%s?mode=ro" % (d / "kms.db"), uri=True)
    try:
        rows = db.execute("SELECT name, cert_sha256 FROM clients").fetchall()
    finally:
        db.close()
    assert rows == [("admin", fp)]
    openssl("verify", "-CAfile", str(d / "pki" / "ca.crt"), str(d / "pki" / "client.crt"))


def test_init_refuses_db_without_master_key(kms_dir):
    d = kms_dir
    (d / "master.key").rename(d / "master.key.moved")
    ca = read(d / "pki" / "ca.crt")
    p = kmsctl("init", "--dir", str(d), "--force", check=1)
    assert "master key" in p.stderr and "missing" in p.stderr
    assert not (d / "master.key").exists()
    assert read(d / "pki" / "ca.crt") == ca


def test_init_rsa(tmp_path):
    d = tmp_path / "rsa"
    kmsctl("init", "--dir", str(d), "--rsa", check=0)
    for name in ("ca", "server", "client"):
        t = openssl("pkey", "-in", str(d / "pki" / (name + ".key")), "-noout", "-text").stdout
        assert "3072 bit" in t, name
    openssl("verify", "-purpose", "sslserver", "-CAfile", str(d / "pki" / "ca.crt"),
            str(d / "pki" / "server.crt"))


def test_init_usage_errors(tmp_path):
    kmsctl("init", check=2)
    kmsctl("init", "--dir", str(tmp_path / "a"), "--listen", "::1:5696", check=2)
    kmsctl("init", "--dir", str(tmp_path / "b"), "--host", "bad host,DNS:evil", check=2)
    assert not (tmp_path / "b" / "kmsd.yaml").exists()
    kmsctl("init", "--dir", str(tmp_path / "c"), "--bogus", check=2)


def test_init_host_list(tmp_path):
    """--host takes comma-separated lists (KMSD_HOST in the container passes
    one straight through); empty items are skipped; the first name is the
    CN."""
    d = tmp_path / "hl"
    kmsctl("init", "--dir", str(d), "--host", "kms-a.example.test,10.1.2.3",
           "--host", ",kms-b.example.test,", check=0)
    t = text_of(str(d / "pki" / "server.crt"))
    san = re.search(r"X509v3 Subject Alternative Name:.*\n\s*(.*)\n", t).group(1)
    for want in ("DNS:kms-a.example.test", "IP Address:10.1.2.3", "DNS:kms-b.example.test",
                 "DNS:localhost", "IP Address:127.0.0.1"):
        assert want in san, san
    assert re.search(r"Subject:.*CN *= *kms-a\.example\.test", t)
    kmsctl("init", "--dir", str(tmp_path / "hl2"), "--host", "ok.example,bad name", check=2)


def test_issue_client(kms_dir, tmp_path):
    d = str(kms_dir)
    p = kmsctl("pki", "issue-client", "alice", "--dir", d, check=0)
    crt, key = kms_dir / "pki" / "alice.crt", kms_dir / "pki" / "alice.key"
    assert mode(key) == 0o600
    openssl("verify", "-purpose", "sslclient", "-CAfile", str(kms_dir / "pki" / "ca.crt"), str(crt))
    assert eku_of(str(crt)) == "TLS Web Client Authentication"
    subj = openssl("x509", "-in", str(crt), "-noout", "-subject", "-nameopt", "RFC2253").stdout
    assert subj.strip() == "subject=CN=alice"
    assert sha256_fp(str(crt)) in p.stdout
    # The key belongs to the certificate.
    pub1 = openssl("x509", "-in", str(crt), "-noout", "-pubkey").stdout
    pub2 = openssl("pkey", "-in", str(key), "-pubout").stdout
    assert pub1 == pub2

    # No silent overwrite.
    before = read(crt)
    p = kmsctl("pki", "issue-client", "alice", "--dir", d, check=1)
    assert "--force" in p.stderr
    assert read(crt) == before
    kmsctl("pki", "issue-client", "alice", "--dir", d, "--force", check=0)
    assert read(crt) != before

    # --out-dir, and names that would escape it are refused.
    out = tmp_path / "out"
    out.mkdir()
    kmsctl("pki", "issue-client", "bob", "--dir", d, "--out-dir", str(out), check=0)
    assert (out / "bob.crt").is_file() and mode(out / "bob.key") == 0o600
    # A missing --out-dir is made (0700); a missing parent is named.
    made = tmp_path / "made"
    kmsctl("pki", "issue-client", "dave", "--dir", d, "--out-dir", str(made), check=0)
    assert mode(made) == 0o700 and mode(made / "dave.key") == 0o600
    p = kmsctl("pki", "issue-client", "erin", "--dir", d, "--out-dir",
               str(tmp_path / "no" / "such"), check=1)
    assert "cannot create --out-dir" in p.stderr
    kmsctl("pki", "issue-client", "../evil", "--dir", d, check=2)
    kmsctl("pki", "issue-client", "a/b", "--dir", d, check=2)
    # Without a CA there is nothing to issue from.
    kmsctl("pki", "issue-client", "carol", "--dir", str(tmp_path / "nothing"), check=1)


def make_csr(tmp_path, cn, keyalg=("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")):
    key, csr = tmp_path / (cn + ".key"), tmp_path / (cn + ".csr")
    openssl("req", "-new", *keyalg, "-nodes", "-keyout", str(key), "-subj",
            "/O=VMware/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
            "-out", str(csr))
    return csr


def test_sign_csr(kms_dir, tmp_path):
    d, ca = str(kms_dir), str(kms_dir / "pki" / "ca.crt")
    csr = make_csr(tmp_path, "vcenter.example.test")
    out = tmp_path / "vcenter.crt"
    kmsctl("pki", "sign-csr", str(csr), "--dir", d, "--out", str(out), check=0)
    openssl("verify", "-purpose", "sslclient", "-CAfile", ca, str(out))
    assert eku_of(str(out)) == "TLS Web Client Authentication"
    t = text_of(str(out))
    assert "CA:FALSE" in t and "CA:TRUE" not in t  # the CSR's request is ignored
    subj = openssl("x509", "-in", str(out), "-noout", "-subject", "-nameopt", "RFC2253").stdout
    assert subj.strip() == "subject=CN=vcenter.example.test,O=VMware"
    pub_csr = openssl("req", "-in", str(csr), "-noout", "-pubkey").stdout
    pub_crt = openssl("x509", "-in", str(out), "-noout", "-pubkey").stdout
    assert pub_csr == pub_crt

    # Without --out the certificate goes to stdout; an RSA 2048 CSR is fine.
    csr2 = make_csr(tmp_path, "rsa-client", ("-newkey", "rsa:2048"))
    p = kmsctl("pki", "sign-csr", str(csr2), "--dir", d, check=0)
    assert p.stdout.startswith("-----BEGIN CERTIFICATE-----")
    openssl("verify", "-purpose", "sslclient", "-CAfile", ca, input=p.stdout)

    # DER input works too.
    der = tmp_path / "v.der"
    openssl("req", "-in", str(csr), "-outform", "DER", "-out", str(der))
    kmsctl("pki", "sign-csr", str(der), "--dir", d, "--out", str(tmp_path / "der.crt"), check=0)


def test_sign_csr_rejects_bad(kms_dir, tmp_path):
    d = str(kms_dir)
    csr = make_csr(tmp_path, "tamper")
    der = bytearray(openssl_bytes("req", "-in", str(csr), "-outform", "DER"))
    der[-5] ^= 0x40  # inside the signature value
    bad = tmp_path / "bad.der"
    bad.write_bytes(bytes(der))
    out = tmp_path / "bad.crt"
    p = kmsctl("pki", "sign-csr", str(bad), "--dir", d, "--out", str(out), check=2)
    assert "signature" in p.stderr
    assert not out.exists()

    junk = tmp_path / "junk.csr"
    junk.write_text("-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n")
    kmsctl("pki", "sign-csr", str(junk), "--dir", d, check=2)

    weak = make_csr(tmp_path, "weak", ("-newkey", "rsa:1024"))
    p = kmsctl("pki", "sign-csr", str(weak), "--dir", d, check=2)
    assert "2048" in p.stderr
    kmsctl("pki", "sign-csr", str(tmp_path / "missing.csr"), "--dir", d, check=1)


def openssl_bytes(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_ca_export(kms_dir):
    p = kmsctl("ca", "export", "--dir", str(kms_dir), check=0)
    assert p.stdout.startswith("-----BEGIN CERTIFICATE-----")
    want = openssl("x509", "-in", str(kms_dir / "pki" / "ca.crt"), "-noout", "-fingerprint",
                   "-sha256").stdout
    got = openssl("x509", "-noout", "-fingerprint", "-sha256", input=p.stdout).stdout
    assert got == want
    assert "PRIVATE" not in p.stdout
    # --config's directory is the default DIR.
    p2 = kmsctl("--config", str(kms_dir / "kmsd.yaml"), "ca", "export", check=0)
    assert p2.stdout == p.stdout
    kmsctl("ca", "export", "--dir", str(kms_dir / "nope"), check=1)
    kmsctl("ca", "frobnicate", check=2)


def test_help():
    for args in (("init", "--help"), ("pki", "--help"), ("ca", "--help"),
                 ("pki", "issue-client", "--help"), ("pki", "sign-csr", "--help")):
        p = kmsctl(*args, check=0)
        assert p.stdout.startswith("usage: kmsctl"), args
    p = kmsctl("--help", check=0)
    for cmd in ("init", "pki", "ca"):
        assert re.search(r"^  %s\s" % cmd, p.stdout, re.M), cmd


# ---------------------------------------------------------------------------
# End to end: the directory `kmsctl init` writes is enough to run kmsd and
# talk to it with the generated admin certificate.

KMSD = os.path.join(BUILD, "kmsd")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, timeout=30.0):
    import socket
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture
def running_kmsd(tmp_path):
    if not os.access(KMSD, os.X_OK):
        pytest.skip("kmsd is not built at %s" % KMSD)
    d = tmp_path / "e2e"
    port = free_port()
    kmsctl("init", "--dir", str(d), "--listen", "127.0.0.1:%d" % port, check=0)
    log = open(tmp_path / "kmsd.log", "w")
    proc = subprocess.Popen([KMSD, "-c", str(d / "kmsd.yaml")], stdout=log, stderr=log)
    try:
        if not wait_listening(port, proc):
            log.flush()
            pytest.fail("kmsd did not start:\n" + read(tmp_path / "kmsd.log", "r")[-3000:])
        yield d, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_e2e_tls_with_generated_certs(running_kmsd):
    import socket
    import ssl
    d, port = running_kmsd
    pki = d / "pki"
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-cert", str(pki / "client.crt"), "-key", str(pki / "client.key"),
                        "-CAfile", str(pki / "ca.crt"), "-verify_return_error", "-brief"],
                       input="", capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Verification: OK" in p.stdout + p.stderr

    # The server certificate matches the names clients use.
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    for name in ("localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                assert t.version() in ("TLSv1.2", "TLSv1.3")

    # Without a client certificate the server refuses (client_auth: required).
    ctx2 = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    refused = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx2.wrap_socket(s, server_hostname="localhost") as t:
                # TLS 1.3: the refusal arrives after the client's Finished.
                t.sendall(b"\x42\x00\x78\x01\x00\x00\x00\x00")
                refused = t.recv(1) == b""
    except (ssl.SSLError, ConnectionError, OSError):
        refused = True
    assert refused


def test_e2e_pykmip_admin(running_kmsd):
    d, port = running_kmsd
    pki = d / "pki"
    script = (
        "from kmip.pie.client import ProxyKmipClient\n"
        "from kmip import enums\n"
        "c = ProxyKmipClient(hostname='127.0.0.1', port=%d, cert=%r, key=%r, ca=%r,\n"
        "                    config_file='/dev/null')\n"
        "c.open()\n"
        "uid = c.create(enums.CryptographicAlgorithm.AES, 256)\n"
        "k = c.get(uid)\n"
        "assert len(k.value) == 32, len(k.value)\n"
        "print('OK', uid)\n"
        "c.close()\n" % (port, str(pki / "client.crt"), str(pki / "client.key"),
                         str(pki / "ca.crt")))
    p = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr
