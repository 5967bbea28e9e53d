"""tests/interop/test_cluster_ready.py: a node that cannot serve keys gets
out of the way (docs/cluster.md, "Readiness"; docs/server.md).

- the database cannot be read (its header overwritten while kmsd runs):
  the KMIP listener closes (connect refused at once), an idle connection is
  closed, one line is logged for each change; with the header back the
  listener re-opens by itself and the keys read back;
(the HSM case of a single node is in test_hsm_pkcs11.py; the cluster cases
are in the other test_cluster_*.py files).
"""
import os
import socket
import time

import kmsd_harness as H


def refused(k, host=None):
    try:
        socket.create_connection((host or k.host, k.port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def wait_until(pred, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_store_unreadable_closes_the_listener(kmsd_factory):
    from kmip.core import enums
    k = kmsd_factory()
    c = k.pykmip_client()
    uid = c.create(enums.CryptographicAlgorithm.AES, 256)
    val = c.get(uid).value
    c.close()
    idle = k.raw_tls()
    log_at = len(k.log_text())
    db = os.path.join(k.dir, "kms.db")
    # Nothing writes meanwhile (no request), so the writer never rewrites
    # page 1 and the header can be put back as it was.
    with open(db, "r+b") as f:
        head = f.read(100)
        f.seek(0)
        f.write(b"\xa5" * 100)
    try:
        assert wait_until(lambda: refused(k), 3), k.log_tail()
        assert H.closed_by_peer(idle, timeout=2.0)
    finally:
        idle.close()
        with open(db, "r+b") as f:
            f.write(head)
    assert wait_until(lambda: not refused(k), 10), k.log_tail()
    c = k.pykmip_client()
    assert c.get(uid).value == val
    c.close()
    log = k.log_text()[log_at:]
    assert log.count("store: unreadable") == 1, log[-3000:]
    assert log.count("not ready: store unreadable: KMIP listener closed") == 1, log[-3000:]
    assert log.count("store: available again") == 1
    assert log.count("ready: serving keys again") == 1
    k.stop()
