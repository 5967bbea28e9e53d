"""tests/interop/test_cluster_join_load.py: a node joins a cluster that
holds many keys while clients write (docs/cluster.md, "Catch-up").

Two kmsd processes (A, B) formed with the kmsctl commands; kmipbench
seeds KMS_TEST_JOIN_KEYS keys through A (64 connections; B replicates them
as they come); then C joins with `cluster invite` / `cluster join` while a
client keeps creating keys on A and B. C's KMIP listener opens only once
it has caught up (snapshot, then the tail); the time from starting C to
that, and C's own snapshot figures from its log, are printed. Afterwards
`cluster verify` exits 0 on every node and the keys written during the
join are on C.

KMS_TEST_JOIN_KEYS defaults to 100 000, the size the cluster issue names;
a smaller value gives a quicker run while working on replication/.
"""
import json
import os
import re
import subprocess
import threading
import time

import pytest

import kmsd_harness as H
from kmsd_harness import wait_for
from test_cluster_failover import all_ok, verified
from test_cluster_durability import missing_on
from test_store_durability import Conn

KEYS = int(os.environ.get("KMS_TEST_JOIN_KEYS", "100000"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("join")
    with H.running_cluster(base, 2, {"log": {"level": "warn"}}) as nodes:
        nodes[0].base = base
        yield nodes


def kmipbench(k, *args, timeout=600):
    """Run kmipbench against k; its JSON result line."""
    p = subprocess.run([os.path.join(H.build_dir(), "kmipbench"), "--host", k.host, "--port",
                        str(k.port), "--ca", k.ca, "--cert", k.cert, "--key", k.key, "--json",
                        *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def acked_by_all(k):
    """Every peer of k has acknowledged all of k's changes (its status)."""
    p = k.kmsctl("--json", "cluster", "status", check=False)
    rows = json.loads(p.stdout) if p.stdout.strip() else []
    peers = [r for r in rows if not r.get("self")]
    return bool(peers) and all(r.get("lag_changes") == 0 for r in peers)


def test_node_joins_a_loaded_cluster_under_writes(cluster):
    a, b = cluster
    t0 = time.time()
    r = kmipbench(a, "--op", "create", "--connections", "64", "--requests", str(KEYS),
                  "--warmup", "0")
    assert r["errors"] == 0
    seed_s = time.time() - t0
    # B applies the seed as it comes and finishes after A's last answer (a
    # loaded machine needs minutes for 100 000 keys in the ASan build). The
    # wait reads A's status, which costs nothing; `cluster verify` digests
    # every object on both nodes, so it runs once B is level.
    wait_for(lambda: acked_by_all(a), timeout=600, step=1.0, what="b acknowledged the seed")
    wait_for(lambda: verified(a), timeout=60, step=1.0, what="b holds the seeded keys")

    stop = threading.Event()
    written = []

    def writer(k):
        c = Conn(k)
        try:
            while not stop.is_set():
                written.append(c.create_aes(256))
                time.sleep(0.01)
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in (a, b)]
    for t in threads:
        t.start()
    try:
        d = os.path.join(str(a.base), "c")
        os.makedirs(d, exist_ok=True)
        c = H.Kmsd(d, {"log": {"level": "info"}}, start=False, join=a.invite(), node_id="c",
                   client_of=a)
        cluster.append(c)  # stopped with the others, its log attached on failure
        t1 = time.time()
        c.start(timeout=600)  # returns once the KMIP port accepts: caught up
        ready_s = time.time() - t1
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    m = re.search(r"snapshot from \w+ applied: (\d+) entities up to seq \d+ in ([\d.]+) s",
                  c.log_text())
    assert m, c.log_tail()
    entities, snap_s = int(m.group(1)), float(m.group(2))
    assert entities >= KEYS
    H.report("join under load: %d keys seeded through a in %.1f s (%.0f Create/s); c ready %.1f s "
          "after start, snapshot of %d entities applied in %.1f s (%.0f objects/s); %d keys "
          "written during the join" % (KEYS, seed_s, KEYS / seed_s, ready_s, entities, snap_s,
                                       entities / max(snap_s, 0.001), len(written)))
    wait_for(lambda: all_ok(c), timeout=60, what="c linked both ways")
    wait_for(lambda: acked_by_all(a) and acked_by_all(b), timeout=300, step=1.0,
             what="c acknowledged every change of a and b")
    wait_for(lambda: verified(c), timeout=120, step=1.0, what="cluster verify exit 0")
    assert missing_on(c, written) == []
