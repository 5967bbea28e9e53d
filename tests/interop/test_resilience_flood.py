"""tests/interop/test_resilience_flood.py: connection floods and memory
held by half-sent requests, against a real kmsd with small limits.

- Plain TCP connections that send nothing, and TLS handshakes left half
  done (a ClientHello, then silence), each flood larger than
  limits.max_connections and reopened as fast as kmsd closes them: a
  client with a registered certificate, opening a new connection for
  every request, completes >= 95 % of its requests; evictions are
  counted and the log stays small (its flood lines are rate-limited).
- 1 000 authenticated connections each send most of a 1 MiB request and
  stall: kmsd's RSS grows by less than limits.request_memory plus one TLS
  record per connection (instead of 1 000 MiB), and a client with another
  identity keeps being served.

What they deliberately do not cover: floods from many addresses (one
loopback address here), and bandwidth exhaustion.
"""
import json
import os
import resource
import select
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

import kmsd_harness as H

SUCCESS = 0


def query_ok(k, timeout=5.0, certfile=None, keyfile=None):
    """One Query on a new connection; True when answered Success."""
    try:
        s = k.raw_tls(timeout=timeout, certfile=certfile, keyfile=keyfile)
    except (OSError, ssl.SSLError):
        return False
    try:
        s.sendall(H.query_request())
        return H.statuses(H.read_response(s)) == [SUCCESS]
    except (OSError, ssl.SSLError, ConnectionError):
        return False
    finally:
        s.close()


def client_hello(k):
    """The bytes of a TLS ClientHello for this kmsd (the start of a
    handshake the flood never finishes)."""
    ctx = k.ssl_context(cert=False)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class Flood(threading.Thread):
    """Keeps `n` connections open to kmsd from source address `src`, each
    sending `hello` (or nothing) once, and reopens those kmsd closes, at
    most `burst` per 50 ms round."""

    def __init__(self, k, n, src, hello=b"", burst=20):
        super().__init__(daemon=True)
        self.k, self.n, self.src, self.hello, self.burst = k, n, src, hello, burst
        self.socks = []
        self.stop = threading.Event()
        self.opened = 0

    def _open(self):
        try:
            s = socket.create_connection((self.k.host, self.k.port), timeout=1.0,
                                         source_address=(self.src, 0))
            if self.hello:
                s.sendall(self.hello)
            s.setblocking(False)
            self.socks.append(s)
            self.opened += 1
        except OSError:
            pass

    def run(self):
        while not self.stop.is_set():
            for _ in range(min(self.burst, self.n - len(self.socks))):
                self._open()
            if not self.socks:
                time.sleep(0.05)
                continue
            r, _, _ = select.select(self.socks, [], [], 0.05)
            for s in r:
                try:
                    if s.recv(65536):
                        continue  # the server's handshake flight: ignored
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    pass
                self.socks.remove(s)
                s.close()
        for s in self.socks:
            s.close()


def status(k):
    p = k.kmsctl("--json", "status", check=False)
    return json.loads(p.stdout)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


@pytest.mark.parametrize("kind", ["tcp", "half-handshake"])
def test_flood_larger_than_max_connections(tmp_path, kind):
    k = H.Kmsd(tmp_path, {"limits": {"max_connections": 96, "max_unauthenticated": 64}})
    try:
        hello = client_hello(k) if kind == "half-handshake" else b""
        # Two attacking addresses (the client connects from 127.0.0.1).
        floods = [Flood(k, 150, src, hello) for src in ("127.0.0.2", "127.0.0.3")]  # 300 > 96
        for f in floods:
            f.start()
        # Every slot taken, kmsd evicting: how soon depends on the machine.
        # The flood also lasts 1.5 s at least, so its rate-limited log lines
        # span a new second, where the count of those suppressed is logged.
        time.sleep(1.5)
        H.wait_for(lambda: status(k)["evicted"] > 0, timeout=30, step=0.1,
                   what="kmsd evicting flood connections")
        log0 = len(k.log_text())
        t0 = time.time()
        ok = sum(query_ok(k) for _ in range(40))
        elapsed = time.time() - t0
        for f in floods:
            f.stop.set()
        for f in floods:
            f.join(10)
        opened = sum(f.opened for f in floods)
        assert ok >= 38, "%d of 40 requests served during the flood (%d flood connections " \
                         "opened)\n%s" % (ok, opened, k.log_tail())
        assert opened > 300  # kmsd closed flood connections and they came back
        st = status(k)
        assert st["evicted"] > 0, st
        # Flood lines are rate-limited: a few per second and kind, plus the
        # client's own lines (a handful per request).
        grown = len(k.log_text()) - log0
        lines = k.log_text()[log0:].count("\n")
        assert lines < 40 * 8 + 60 * (elapsed + 2), (lines, grown)
        assert "suppressed" in k.log_text()
        # The metrics endpoint is off here; the counters are in status.
        assert st["unauthenticated"] >= 0
    finally:
        k.kill()


def register_second_client(k, tmp_path, name="steady"):
    """A second registered client certificate (another identity)."""
    out = tmp_path / "second"
    out.mkdir()
    k.kmsctl("pki", "issue-client", name, "--dir", k.dir, "--out-dir", str(out))
    cert, key = str(out / (name + ".crt")), str(out / (name + ".key"))
    k.kmsctl("tenant", "add", name)
    k.kmsctl("client", "add", "--tenant", name, "--cert", cert)
    return cert, key


def test_stalled_large_requests_stay_within_request_memory(tmp_path):
    n = 1000
    raise_nofile(4 * n)
    budget_mib = 32
    k = H.Kmsd(tmp_path, {"limits": {
        "max_connections": n + 64, "max_message": "1MiB",
        "request_memory": "%dMiB" % budget_mib, "request_memory_per_client": "16MiB",
        "message_timeout": "60s", "idle_timeout": "60s"}})
    conns = []
    try:
        cert2, key2 = register_second_client(k, tmp_path)
        assert query_ok(k, certfile=cert2, keyfile=key2)
        for _ in range(n):
            conns.append(k.raw_tls(timeout=20))
        assert query_ok(k, certfile=cert2, keyfile=key2)
        time.sleep(0.5)
        base = k.rss_kb()
        # Each connection declares a 1 MiB message and sends all of it but
        # the last byte, as far as kmsd reads it.
        size = (1 << 20) - 8
        head = b"\x42\x00\x78\x01" + struct.pack(">I", size)  # Request Message, Structure
        # One shared payload; each connection keeps only its offset in it.
        payload = memoryview(head + b"\x00" * (size - 1))
        todo = {s: 0 for s in conns}
        for s in conns:
            s.setblocking(False)
        deadline = time.time() + 20
        while todo and time.time() < deadline:
            progressed = False
            for s in list(todo):
                off = todo[s]
                try:
                    sent = s.send(payload[off:off + 65536])
                except (ssl.SSLWantWriteError, BlockingIOError):
                    continue
                except (OSError, ssl.SSLError):
                    del todo[s]
                    continue
                progressed = True
                if off + sent >= len(payload):
                    del todo[s]
                else:
                    todo[s] = off + sent
            if not progressed:
                time.sleep(0.05)
        time.sleep(1.0)
        grown_kb = k.rss_kb() - base
        # The budget; plus, per stalled connection, the TLS record it is in
        # the middle of and one read (what a connection holds below the
        # request layer, docs/security.md); plus a fixed slack (allocator).
        # Without the budget this is n x 1 MiB.
        limit_kb = budget_mib * 1024 + n * 34 + k.rss_slack_kb(16 * 1024)
        assert grown_kb < limit_kb, "RSS grew %d KiB (limit %d KiB)" % (grown_kb, limit_kb)
        st = status(k)
        assert st["memory_waits"] > 0, st
        assert st["request_memory"] <= budget_mib << 20, st
        # Another identity is still served, at once.
        t0 = time.time()
        assert query_ok(k, certfile=cert2, keyfile=key2)
        assert time.time() - t0 < 5
    finally:
        for s in conns:
            s.close()
        k.kill()
