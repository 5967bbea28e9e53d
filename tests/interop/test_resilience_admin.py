"""tests/interop/test_resilience_admin.py: the admin socket under a slow or
stuck client, and kmsctl's own timeout.

- A client that trickles a request one byte every 2 s, and 13 more that
  connect and send nothing: `kmsctl status`, `tenant list` and `tenant add`
  keep answering within a second or two meanwhile (each connection has a
  thread of its own); the trickling client is closed once its request has
  taken 10 s (trickling does not extend the deadline). kmsd serves 16
  admin connections at once and tells a 17th "busy": the stuck clients
  leave two, one for each kmsctl and one for the connection of the kmsctl
  before it, which still counts until its thread has seen it close (a
  fast kmsctl starts before that).
- `kmsctl --timeout 1` against a socket that accepts and never answers
  gives up after about a second with exit status 3 and says why.
"""
import os
import socket
import subprocess
import threading
import time

import yaml

import kmsd_harness as H


def admin_socket(k):
    return os.path.join(k.dir, k.config()["admin"]["socket"])


def timed(k, *args):
    t0 = time.time()
    p = k.kmsctl(*args, check=False, timeout=30)
    return p, time.time() - t0


def test_slow_admin_clients_do_not_block_others(tmp_path):
    k = H.Kmsd(tmp_path)
    path = admin_socket(k)
    idle = []
    try:
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.connect(path)
        # An admin request header announcing a body that never completes.
        head = b"\x54\x00\x01\x01" + (200).to_bytes(4, "big")  # ADMIN_REQUEST, Structure
        closed = threading.Event()

        def trickle():
            try:
                for b in head + b"\0" * 200:
                    slow.send(bytes([b]))
                    time.sleep(2)
            except OSError:
                closed.set()

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        for _ in range(13):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            idle.append(s)
        time.sleep(0.5)
        worst = 0.0
        for i in range(4):
            for args in (("status",), ("tenant", "list"), ("tenant", "add", "t%d" % i)):
                p, took = timed(k, *args)
                assert p.returncode == 0, (args, p.stdout, p.stderr)
                worst = max(worst, took)
        assert worst < 3, "an admin command took %.1f s next to a slow client" % worst
        # The trickling client is closed ~10 s after its first byte.
        t0 = time.time()
        slow.settimeout(15)
        try:
            data = slow.recv(100)
        except OSError:
            data = b""
        assert data == b"", data
        assert time.time() - t0 < 13
        assert "no complete request within" in k.log_text()
        slow.close()
    finally:
        for s in idle:
            s.close()
        k.kill()


def test_kmsctl_says_busy_when_every_admin_slot_is_taken(tmp_path):
    """16 admin connections that send nothing hold every slot: kmsctl is
    told "busy" before kmsd closes its connection, and says so with exit
    status 1, also when the close comes before its request is written
    (a plain write() there raises SIGPIPE: status -13, nothing printed)."""
    k = H.Kmsd(tmp_path)
    path = admin_socket(k)
    idle = []
    try:
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            idle.append(s)
        # kmsd counts them once its admin thread has accepted them.
        deadline = time.time() + 10
        while timed(k, "status")[0].returncode == 0:
            assert time.time() < deadline, "16 idle admin connections did not take every slot"
            time.sleep(0.1)
        for _ in range(5):
            p, took = timed(k, "status")
            assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
            assert "busy" in p.stderr, p.stderr
            assert took < 5
        for s in idle:
            s.close()
        idle = []
        deadline = time.time() + 10
        while timed(k, "status")[0].returncode != 0:
            assert time.time() < deadline, "kmsctl status kept failing after the slots were freed"
            time.sleep(0.2)
    finally:
        for s in idle:
            s.close()
        k.kill()


def test_kmsctl_timeout(tmp_path):
    k = H.Kmsd(tmp_path, start=False)
    fake = str(tmp_path / "mute.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(fake)
    srv.listen(4)
    held = []

    def accept():
        try:
            while True:
                c, _ = srv.accept()
                held.append(c)  # read nothing, answer nothing
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    cfg = k.config()
    cfg["admin"]["socket"] = fake
    conf = str(tmp_path / "mute.yaml")
    with open(conf, "w") as f:
        yaml.safe_dump(cfg, f)
    try:
        t0 = time.time()
        p = subprocess.run([H.kmsctl_bin(), "--config", conf, "--timeout", "1", "status"],
                           capture_output=True, text=True, timeout=30)
        took = time.time() - t0
        assert p.returncode == 3, (p.returncode, p.stderr)
        assert "no answer from kmsd within 1000 ms" in p.stderr, p.stderr
        assert 0.9 < took < 5, took
        p = subprocess.run([H.kmsctl_bin(), "--timeout", "x", "status"], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 2
    finally:
        srv.close()
        for c in held:
            c.close()
