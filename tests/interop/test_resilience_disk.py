"""tests/interop/test_resilience_disk.py: a full disk under a real kmsd.

kmsd's directory (database, WAL, audit log) lives on a small tmpfs, which a
filler file then fills to the last byte:

- a Create either succeeds or is answered Operation Failed with a Result
  Message naming the disk ("store: no space left on device"), never a
  vague I/O error, and never Success for what was not stored;
- Gets of existing keys keep being served;
- `kmsctl audit status` answers at once, saying the log is failing and how
  many records wait;
- once the filler is removed, the audit writer resumes by itself (backlog
  0), Creates succeed again without a restart, and after a restart every
  acknowledged key is there and the whole audit chain verifies.

Needs root (mount); skipped with the reason otherwise. The tmpfs is
unmounted whatever happens.
"""
import json
import os
import subprocess
import time

import pytest

import kmsd_harness as H
from test_store_durability import Conn, OP_CREATE, OP_GET, key_material, uid_item
from test_resilience_crash import create_payload

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def fill_disk(path):
    """Write zeros to `path` until the file system is full."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError:
                break
        while True:  # the last few bytes
            try:
                if os.write(fd, b"\0" * 512) <= 0:
                    break
            except OSError:
                break
    finally:
        os.close(fd)


def audit_status(k):
    p = k.kmsctl("--json", "audit", "status", check=False, timeout=20)
    return json.loads(p.stdout)


def test_disk_full_on_tmpfs(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(disk)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + p.stderr.strip())
    k = None
    try:
        k = H.Kmsd(disk, {"audit": {"fsync": True}})
        c = Conn(k, timeout=30)
        acked = []
        for _ in range(5):
            st, reason, pl = c.call(OP_CREATE, create_payload())
            assert st == H.STATUS_SUCCESS
            acked.append(H.find_all(pl, 0x420094)[0])

        filler = disk / "filler"
        fill_disk(str(filler))
        refused = []
        for _ in range(20):
            c.sock.sendall(H.request(H.batch_item(OP_CREATE, create_payload())))
            tree = H.decode(H.read_response(c.sock))
            st = H.find_all(tree, "ResultStatus")[0]
            if st == H.STATUS_SUCCESS:
                acked.append(H.find_all(tree, 0x420094)[0])
            else:
                refused.append(H.find_all(tree, "ResultMessage"))
        assert refused, "every Create succeeded on a full disk"
        for msgs in refused:
            assert any("no space left on device" in m for m in msgs), refused[:3]
        # Reads keep working.
        for uid in acked:
            st, reason, pl = c.call(OP_GET, [uid_item(uid)])
            assert st == H.STATUS_SUCCESS, reason
            assert [len(m) for m in key_material(pl)] == [32]
        # The audit log says what is wrong, at once.
        t0 = time.time()
        st = audit_status(k)
        assert time.time() - t0 < 5
        assert st["state"] == "failing", st
        assert st["backlog"] > 0, st
        assert "No space left on device" in st["last_error"], st

        os.unlink(filler)
        deadline = time.time() + 15
        while time.time() < deadline:
            st = audit_status(k)
            if st["state"] == "ok" and st["backlog"] == 0:
                break
            time.sleep(0.2)
        assert st["state"] == "ok" and st["backlog"] == 0, st
        # The store takes writes again, without a restart.
        st_, reason, pl = c.call(OP_CREATE, create_payload())
        assert st_ == H.STATUS_SUCCESS, reason
        acked.append(H.find_all(pl, 0x420094)[0])
        c.close()

        k.stop()
        k.start()
        c = Conn(k, timeout=30)
        for uid in acked:
            st_, reason, pl = c.call(OP_GET, [uid_item(uid)])
            assert st_ == H.STATUS_SUCCESS, (uid, reason)
        c.close()
        audit = os.path.join(k.dir, k.config()["audit"]["path"])
        v = subprocess.run([H.kmsctl_bin(), "audit", "verify", audit], capture_output=True,
                           text=True, timeout=60)
        assert v.returncode == 0, v.stdout + v.stderr
    finally:
        if k:
            k.kill()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
