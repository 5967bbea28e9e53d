"""tests/interop/test_cluster_durability.py: with `replication.sync_acks: 1`
no node's loss loses an acknowledged key (docs/cluster.md, section 5).

Three kmsd processes formed with the kmsctl commands, sync_acks 1. 64
client threads, each on its own mutual-TLS connection to A, create keys as
fast as A answers; A is killed with SIGKILL in the middle of it. Every key
A acknowledged (a Create answered Success) is then fetched from both
survivors: A answered only once a peer had the key durably, and the
survivors pass it on to each other. A restarted converges with them
(`cluster verify` exits 0). Clients on the killed node see their
connection drop; that is not checked here (test_cluster_failover.py).
"""
import os
import signal
import threading

import pytest

import kmsd_harness as H
from kmsd_harness import wait_for
from test_cluster_failover import all_ok, formed, verified
from test_store_durability import OP_GET, Conn, uid_item

THREADS = 64


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with H.running_cluster(tmp_path_factory.mktemp("sync"), 3, {
            "log": {"level": "warn"}, "limits": {"max_connections": 256},
            "replication": {"sync_acks": 1, "sync_timeout_ms": 5000}}) as nodes:
        wait_for(lambda: formed(nodes), what="three nodes linked")
        yield nodes


def missing_on(k, uids):
    """The uids k does not serve (Get not Success), on one connection."""
    c = Conn(k)
    try:
        return [u for u in uids if c.call(OP_GET, [uid_item(u)])[0] != H.STATUS_SUCCESS]
    finally:
        c.close()


def test_kill_9_under_load_loses_no_acknowledged_key(cluster):
    a, b, c = cluster
    acked = []
    refused = [0]
    started = threading.Barrier(THREADS + 1)
    lock = threading.Lock()

    def writer():
        try:
            conn = Conn(a, timeout=10)
        except OSError:
            started.wait()
            return
        started.wait()
        try:
            while True:
                uid = conn.create_aes(256)  # asserts Success: acknowledged
                with lock:
                    acked.append(uid)
        except AssertionError:
            with lock:
                refused[0] += 1  # answered with a failure: not acknowledged
        except (OSError, ConnectionError):
            pass  # the node died under it
        finally:
            conn.close()

    threads = [threading.Thread(target=writer) for _ in range(THREADS)]
    for t in threads:
        t.start()
    started.wait()
    wait_for(lambda: len(acked) >= 1500, timeout=60, step=0.02, what="1500 keys acknowledged")
    os.kill(a.pid, signal.SIGKILL)
    a.proc.wait(10)
    for t in threads:
        t.join(30)
    n = len(acked)
    H.report("sync_acks 1: %d Creates acknowledged before kill -9, %d refused" % (n, refused[0]))
    assert n >= 1500
    # Each acknowledged key is on both survivors (B and C pass to each
    # other what only one of them got from A).
    for k in (b, c):
        pending = [acked]
        wait_for(lambda: not pending.append(missing_on(k, pending[-1])) and not pending[-1],
                 timeout=60, what="every acknowledged key on %s" % k.node_id)

    # A comes back and converges with them.
    a.start()
    wait_for(lambda: all_ok(a), what="a linked again")
    wait_for(lambda: verified(a), timeout=60, what="cluster verify exit 0")
    assert missing_on(a, acked[-200:]) == []
