"""Backup while 16 clients write, restore onto a second kmsd with another
master key: every key acknowledged before the backup began is in it, and
every key in the restored server is byte-identical (the whole Get payload:
key block, algorithm, length, material) to the source's. Writers see no
error while the backup runs (it is online)."""
import json
import os
import threading
import time
import uuid

from test_tenants import (SUCCESS, TAG, Kmsd, RawKmip, T, create_key, find, need_kmsd)
from kmsd_harness import report, wait_for

WRITERS = 16


def admin(k):
    return RawKmip(k.port, k.pki / "client.crt", k.pki / "client.key", k.pki / "ca.crt")


def get_payload(c, uid):
    st, rs, p = c.request("Get", T(TAG["UID"], uid))
    return (st, rs, p)


def test_backup_while_16_clients_write_restores_identically(tmp_path):
    need_kmsd()
    src = Kmsd(tmp_path / "src")
    other = None
    try:
        c = admin(src)
        seeded = [create_key(c, "seed-%d-%s" % (i, uuid.uuid4().hex[:6])) for i in range(40)]
        c.close()

        stop = threading.Event()
        acked = []          # (time acknowledged, uid)
        errors = []
        lock = threading.Lock()

        def writer(n):
            w = admin(src)
            try:
                while not stop.is_set():
                    uid = create_key(w, "w%d-%s" % (n, uuid.uuid4().hex[:10]))
                    with lock:
                        acked.append((time.monotonic(), uid))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
            finally:
                w.close()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        for t in threads:
            t.start()
        # A second of load, and at least a few keys per writer whatever the
        # machine's speed, before the backup begins.
        time.sleep(1.0)
        wait_for(lambda: errors or len(acked) > 4 * WRITERS, timeout=60,
                 what="%d keys acknowledged before the backup" % (4 * WRITERS))
        pw = tmp_path / "pass"
        pw.write_text("backup under load\n")
        out = tmp_path / "kms.bak"
        t_begin = time.monotonic()
        res = json.loads(src.ctl("--json", "backup", "--out", str(out), "--passphrase-file",
                                 str(pw), check=0).stdout)
        t_end = time.monotonic()
        # Writers keep going after the snapshot: some keys acknowledged after it.
        wait_for(lambda: errors or sum(t > t_end for t, _ in list(acked)) >= WRITERS,
                 timeout=60, what="keys acknowledged after the backup")
        stop.set()
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        before = [u for (t, u) in acked if t < t_begin]
        during = [u for (t, u) in acked if t_begin <= t <= t_end]
        after = [u for (t, u) in acked if t > t_end]
        assert len(before) > WRITERS and after, (len(before), len(after))
        report("[backup] %d keys acknowledged before the backup, %d during, %d after; "
              "backup holds %d objects" % (len(before), len(during), len(after), res["objects"]))

        other = Kmsd(tmp_path / "other")
        assert (other.dir / "master.key").read_bytes() != (src.dir / "master.key").read_bytes()
        rres = json.loads(other.ctl("--json", "restore", "--in", str(out), "--passphrase-file",
                                    str(pw), check=0).stdout)
        assert rres["objects"] == res["objects"]

        a, b = admin(src), admin(other)
        present = 0
        for uid in seeded + before + during + after:
            sa = get_payload(a, uid)
            sb = get_payload(b, uid)
            assert sa[0] == SUCCESS, (uid, sa[:2])
            if uid in seeded or uid in before:
                assert sb[0] == SUCCESS, ("acknowledged before the backup, missing", uid, sb[:2])
            if sb[0] == SUCCESS:
                present += 1
                assert sb[2] == sa[2], "restored key %s differs from the source" % uid
                assert find(sb[2], TAG["UID"]) == uid
        a.close()
        b.close()
        assert present == res["objects"], (present, res["objects"])
    finally:
        problems = src.stop()
        if other is not None:
            problems += other.stop()
    assert not problems, problems
