"""tests/interop/test_server_lifecycle.py: kmsd as a process.

- `--version`, `--check-config` (0 + effective config / 2 + file:line:col);
- a start-up failure (missing certificate) exits 2 with one clear line;
- graceful shutdown on SIGTERM with requests in flight (a Derive Key
  running, Queries behind it): all answered, exit 0;
- SIGHUP swaps the server certificate: an open connection keeps working,
  new connections see the new certificate; a broken reload keeps the old;
- idle and handshake timeouts close silent connections;
- many idle TLS connections: RSS per connection stays small (printed).
"""
import datetime
import os
import socket
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import kmsd_harness as h
from test_server_tls import _make_cert, _now, load_ca


def test_version():
    p = subprocess.run([h.kmsd_bin(), "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith("kmsd ")


def test_check_config(kmsd_factory, tmp_path):
    k = kmsd_factory(start=False)
    p = subprocess.run([h.kmsd_bin(), "--check-config", k.conf_path], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert "max_connections" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: [\"127.0.0.1:5696\"]\nlimits:\n  max_conections: 5\n")
    p = subprocess.run([h.kmsd_bin(), "--check-config", str(bad)], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2
    assert "bad.yaml:3:" in p.stderr and "max_conections" in p.stderr
    p = subprocess.run([h.kmsd_bin(), "-c", str(bad)], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and "bad.yaml:3:" in p.stderr


def test_replication_needs_a_cluster_node(kmsd_factory):
    """replication.listen on a database that `kmsctl init --peer-listen` or
    `kmsctl cluster join` did not make (no cluster id): the configuration
    is valid, but kmsd does not start, with one clear line, rather than
    run without peers."""
    k = kmsd_factory({"replication": {"listen": "127.0.0.1:%d" % h.free_port()}}, start=False)
    p = subprocess.run([h.kmsd_bin(), "--check-config", k.conf_path], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([h.kmsd_bin(), "-c", k.conf_path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "no cluster id" in p.stderr and "--peer-listen" in p.stderr


def test_startup_failure_is_one_clear_line(kmsd_factory):
    k = kmsd_factory({"tls": {"cert": "pki/missing.crt"}}, start=False)
    p = subprocess.run([h.kmsd_bin(), "-c", k.conf_path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2  # a file named by the configuration is unusable
    assert "tls.cert: cannot load" in p.stderr and "missing.crt" in p.stderr


def test_graceful_shutdown_answers_requests_in_flight(kmsd_factory):
    from test_kmip_async import (OP_DERIVE_KEY, derive_iterations, derive_payload, message,
                                 register_password)
    k = kmsd_factory({"limits": {"shutdown_timeout": "10s"}})
    # Each connection's first request is a Derive Key of about 0.15 s of
    # PBKDF2 (its count from kmsd's own rate), the others Queries behind it:
    # the SIGTERM comes while each connection has one running and the rest
    # received or on their way (Queries alone were all answered first).
    pw = register_password(k)
    derive = message(OP_DERIVE_KEY, derive_payload(pw, derive_iterations(k, pw, 0.15)))
    n_conns, per_conn = 8, 25
    socks = [k.raw_tls() for _ in range(n_conns)]
    blob = derive + b"".join(h.query_request() for _ in range(per_conn - 1))
    answered = [0] * n_conns
    status = [[] for _ in range(n_conns)]
    eof = [False] * n_conns

    def reader(i):
        s = socks[i]
        try:
            for _ in range(per_conn):
                status[i] += h.statuses(h.read_response(s))
                answered[i] += 1
            eof[i] = h.closed_by_peer(s, 15)
        except OSError:
            pass

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n_conns)]
    for s in socks:
        s.sendall(blob)
    for t in threads:
        t.start()
    time.sleep(0.05)
    assert answered == [0] * n_conns, "answers came before the SIGTERM: test too small"
    k.stop(timeout=30)  # asserts exit status 0
    for t in threads:
        t.join(30)
    for s in socks:
        s.close()
    assert answered == [per_conn] * n_conns
    assert status == [[0] * per_conn] * n_conns
    assert all(eof), "connections not closed by the server after the drain"
    log = k.log_text()
    assert "stopped" in log


def _peer_der(sock):
    return sock.getpeercert(binary_form=True)


def test_sighup_swaps_certificate_keeps_connections(kmsd):
    old_der = x509.load_pem_x509_certificate(open(kmsd.server_cert, "rb").read()).public_bytes(
        serialization.Encoding.DER)
    a = kmsd.raw_tls()
    assert _peer_der(a) == old_der
    assert h.statuses(kmsd.send_ttlv(h.discover_versions_request(), sock=a)) == [0]

    ca, ca_key = load_ca(kmsd)
    now = _now()
    new_crt = os.path.join(kmsd.dir, "pki", "server2.crt")
    new_key = os.path.join(kmsd.dir, "pki", "server2.key")
    cert, _ = _make_cert(new_crt, new_key, ca, ca_key, "kmsd-reloaded",
                         now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2),
                         server=True)
    new_der = cert.public_bytes(serialization.Encoding.DER)
    mark = len(kmsd.log_text())
    kmsd.configure({"tls": {"cert": "pki/server2.crt", "key": "pki/server2.key"},
                    "log": {"level": "debug"}})
    kmsd.reload()
    kmsd.wait_log(r"reloaded .*server2\.crt", start=mark)

    b = kmsd.raw_tls()
    try:
        assert _peer_der(b) == new_der
        assert h.statuses(kmsd.send_ttlv(h.discover_versions_request(), sock=b)) == [0]
        # The connection opened before the reload still works, on the old context.
        assert _peer_der(a) == old_der
        for _ in range(3):
            assert h.statuses(kmsd.send_ttlv(h.query_request(), sock=a)) == [0]
    finally:
        b.close()

    # A broken reload (key missing) keeps the running context.
    mark = len(kmsd.log_text())
    kmsd.configure({"tls": {"key": "pki/nonexistent.key"}})
    kmsd.reload()
    kmsd.wait_log(r"reload refused", start=mark)
    c = kmsd.raw_tls()
    assert _peer_der(c) == new_der
    c.close()
    assert h.statuses(kmsd.send_ttlv(h.query_request(), sock=a)) == [0]
    a.close()


def test_sighup_names_the_settings_only_a_restart_applies(kmsd):
    """A reload applies the TLS material and the log settings; every other
    setting that changed in the file is named in one WARN line, and keeps
    its running value."""
    cfg = kmsd.config()
    mark = len(kmsd.log_text())
    kmsd.configure({"threads": cfg.get("threads", 32) + 3,
                    "limits": {"max_connections": 77},
                    "tls": {"require_registered": not cfg.get("tls", {}).get("require_registered",
                                                                             False)},
                    "log": {"level": "debug"}})
    kmsd.reload()
    m = kmsd.wait_log(r"WARN .*reload: (\d+) changed setting\(s\) take effect only after a "
                      r"restart: (.*)", start=mark)
    assert sorted(m.group(2).split(", ")) == ["limits.max_connections", "threads",
                                              "tls.require_registered"], m.group(0)
    assert m.group(1) == "3"
    # They keep their running values: the worker threads are still as many.
    names = []
    for t in os.listdir("/proc/%d/task" % kmsd.pid):
        with open("/proc/%d/task/%s/comm" % (kmsd.pid, t)) as f:
            names.append(f.read().strip())
    assert names.count("kmsd-pool") == cfg.get("threads", 32)
    # A reload that changes only what it applies names nothing.
    mark = len(kmsd.log_text())
    kmsd.configure({"threads": cfg.get("threads", 32),
                    "limits": {"max_connections": cfg.get("limits", {}).get("max_connections",
                                                                            10000)},
                    "tls": {"require_registered": cfg.get("tls", {}).get("require_registered",
                                                                         False)},
                    "log": {"level": "info"}})
    kmsd.reload()
    kmsd.wait_log(r"reloaded ", start=mark)
    assert "take effect only after a restart" not in kmsd.log_text()[mark:]


def test_idle_timeout_closes_idle_connection(kmsd_factory):
    k = kmsd_factory({"limits": {"idle_timeout": "1s"}})
    s = k.raw_tls()
    assert h.statuses(k.send_ttlv(h.discover_versions_request(), sock=s)) == [0]
    t0 = time.time()
    assert h.closed_by_peer(s, 6)
    assert 0.7 < time.time() - t0 < 4
    s.close()
    k.wait_log(r"timeout: limits.idle_timeout")
    # A connection that keeps talking is not idle ...
    s = k.raw_tls()
    for _ in range(4):
        time.sleep(0.5)
        assert h.statuses(k.send_ttlv(h.query_request(), sock=s)) == [0]
    # ... until it stops: closed about 1 s after its last answer (the
    # timer, armed for an earlier deadline, re-arms itself for the rest).
    t0 = time.time()
    assert h.closed_by_peer(s, 6)
    assert 0.7 < time.time() - t0 < 4
    s.close()


def test_handshake_timeout(kmsd_factory):
    k = kmsd_factory({"limits": {"handshake_timeout": "1s"}})
    s = k.raw_tcp()
    t0 = time.time()
    assert h.closed_by_peer(s, 6)
    assert 0.7 < time.time() - t0 < 4
    s.close()
    k.wait_log(r"timeout: limits.handshake_timeout")


def test_idle_connections_memory(kmsd_factory, capsys):
    """Marginal RSS of an idle mutual-TLS connection (slope between n/2 and n
    connections, so start-up arenas do not count); budget 30 KiB, i.e.
    10 000 idle connections in < 300 MB."""
    n = int(os.environ.get("KMSD_IDLE_CONNS", "800"))
    k = kmsd_factory({"limits": {"max_connections": n + 50}, "log": {"level": "warn"}})
    _ = k.send_ttlv(h.discover_versions_request())  # warm up lazily allocated state
    ctx = k.ssl_context()
    socks = []

    def open_more(m):
        for _ in range(m):
            socks.append(ctx.wrap_socket(k.raw_tcp(), server_hostname="localhost"))
        # Every connection is really up on the server (a request on some).
        for s in socks[-m:: max(1, m // 10)]:
            s.sendall(h.discover_versions_request())
            h.read_response(s)
        time.sleep(0.3)

    try:
        open_more(n // 2)
        rss1 = k.rss_kb()
        t0 = time.time()
        open_more(n - n // 2)
        dt = time.time() - t0
        rss2 = k.rss_kb()
        per_kib = (rss2 - rss1) / float(n - n // 2)
        with capsys.disabled():
            h.report("[kmsd] idle TLS connections: %.0f handshakes/s (client-bound), "
                  "RSS %d KiB at %d, %d KiB at %d: %.1f KiB per connection" %
                  ((n - n // 2) / dt, rss1, n // 2, rss2, n, per_kib))
        # Sanitizer builds pad every allocation and keep freed memory in
        # their quarantine, where SSL_OP_CLEANSE_PLAINTEXT's wipe of each
        # released record buffer makes it resident (~50 KiB a connection
        # there, nothing in a normal build): only a loose bound there.
        budget = 260 if k.sanitized() else 30
        assert per_kib < budget, "%.1f KiB per idle TLS connection" % per_kib
    finally:
        for s in socks:
            s.close()


def test_ipv6_and_several_listen_addresses(kmsd_factory):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    k = kmsd_factory(start=False)
    p6 = h.free_port()
    k.configure({"listen": ["%s:%d" % (k.host, k.port), "[::1]:%d" % p6]})
    k.start()
    k.wait_log(r"listening on \[::1\]:%d" % p6)
    ctx = k.ssl_context()
    s = ctx.wrap_socket(socket.create_connection(("::1", p6), timeout=10),
                        server_hostname="localhost")
    try:
        s.sendall(h.discover_versions_request())
        assert h.statuses(h.read_response(s)) == [0]
    finally:
        s.close()
    k.wait_log(r"accept \[::1\]:\d+")
    # "[::1]" is IPv6 only: nothing answers on 127.0.0.1 at that port.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p6), timeout=2).close()


def test_second_instance_on_same_port_refused(kmsd, kmsd_factory):
    other = kmsd_factory(start=False)
    other.configure({"listen": ["%s:%d" % (kmsd.host, kmsd.port)]})
    p = subprocess.run([h.kmsd_bin(), "-c", other.conf_path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "Address already in use" in p.stderr
    # The first one is unaffected.
    assert h.statuses(kmsd.send_ttlv(h.discover_versions_request())) == [0]


def test_run_as_drops_root(request):
    import pwd
    import shutil
    import tempfile
    if os.geteuid() != 0:
        pytest.skip("needs root to test run_as")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    # A directory the service user can reach (pytest's tmp_path is root-only).
    work = tempfile.mkdtemp(prefix="kmsd-runas-", dir="/tmp")
    os.chmod(work, 0o711)
    k = h.Kmsd(work, {"run_as": "nobody"}, start=False)
    request.node._kmsd_instances = [k]
    try:
        # The service user owns its directory and database (as packaging
        # arranges); the master key stays root's: it is read before the drop.
        os.chown(k.dir, nobody.pw_uid, nobody.pw_gid)
        for root, dirs, files in os.walk(k.dir):
            for n in dirs + files:
                if n != "master.key":
                    os.chown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
        k.start()
        k.wait_log(r"privileges dropped to nobody")
        with open("/proc/%d/status" % k.pid) as f:
            uids = [line for line in f if line.startswith("Uid:")][0].split()[1:]
        assert uids == [str(nobody.pw_uid)] * 4
        # Still fully working as nobody: a write and a read through the store.
        from kmip.core import enums
        c = k.pykmip_client()
        try:
            uid = c.create(enums.CryptographicAlgorithm.AES, 256)
            assert c.get(uid).value
        finally:
            c.close()
        k.stop()
    finally:
        k.kill()
        shutil.rmtree(work, ignore_errors=True)
