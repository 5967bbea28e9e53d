"""tests/interop/test_cluster_partition.py: active-active under a cut
(docs/cluster.md, sections 3 and "Tests").

Three kmsd processes formed with the kmsctl commands; every node's peer
address is a tcpproxy front (kmsd_harness.form_cluster(fronts=True)), which
knows which node connected, so the test cuts A from B and C by
blackholing (bytes dropped, sockets kept open) every link between the two
sides, in both directions, while B and C stay linked.

During the cut both sides write, including conflicting operations on the
same keys (made and replicated before the cut): Activate on one side and
Revoke / Destroy on the other, the same custom attribute modified on both
sides in a known order, and a Name created on both sides. After the heal
`cluster verify` exits 0 on every node and each node holds what the merge
rule says: the state joined in the lifecycle lattice, a destroyed key's
material gone from every database, per-attribute last writer wins, and a
Locate by the Name created twice returns both keys, newest first.

A partial cut (A-B cut both ways, C reaching both) converges through C. A
node ships a third node's change on to a peer only when the peer cannot
get it from its origin directly (docs/cluster.md, "Relaying only where
needed"); right after the cut B still counts its link with A open (the
keepalive has not given up yet), so C first skips A's changes for B and
relays them once B has not confirmed them in time.
"""
import os
import sqlite3
import time

import pytest

import kmsd_harness as H
from kmsd_harness import wait_for
from test_cluster_failover import formed, verified
from test_store_durability import (OP_ACTIVATE, OP_DESTROY, OP_GET, OP_GET_ATTRIBUTES,
                             OP_MODIFY_ATTRIBUTE, REASON_CESSATION, REASON_KEY_COMPROMISE,
                             STATE, T_ATTR_NAME, T_ATTR_VALUE, T_ATTRIBUTE, Conn, attr, first,
                             name_attr, uid_item)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with H.running_cluster(tmp_path_factory.mktemp("cut"), 3, {"log": {"level": "info"}},
                           fronts=True) as nodes:
        wait_for(lambda: formed(nodes), what="three nodes linked")
        yield nodes


def cut(a, others):
    """Blackhole every link between node a and the nodes `others`."""
    for k in others:
        a.front.set("blackhole", source=k.node_id)
        k.front.set("blackhole", source=a.node_id)


def text_attr(c, uid, name):
    pl = c.ok(OP_GET_ATTRIBUTES, [uid_item(uid), H.item(T_ATTR_NAME, H.TEXT, name)])
    return first(first(pl, T_ATTRIBUTE), T_ATTR_VALUE)


def has(k, uid):
    c = Conn(k)
    try:
        return c.call(OP_GET_ATTRIBUTES, [uid_item(uid)])[0] == H.STATUS_SUCCESS
    finally:
        c.close()


def blob(k, uid):
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(k.dir, "kms.db"), uri=True)
    try:
        row = con.execute("SELECT blob FROM objects WHERE id = ?", (uid,)).fetchone()
    finally:
        con.close()
    assert row is not None, uid
    return row[0]


def test_writes_on_both_sides_of_a_cut_merge(cluster):
    a, b, c = cluster
    tag = str(os.getpid())
    ca, cb = Conn(a), Conn(b)
    try:
        keys = {n: ca.create_aes(256, attr("x-Site", H.TEXT, "initial"))
                for n in ("compromised", "deactivated", "destroyed", "b-wins", "a-wins",
                          "destroyed-compromised")}
        wait_for(lambda: all(has(k, u) for k in (b, c) for u in keys.values()),
                 what="keys on b and c")
        wait_for(lambda: verified(a), what="identical before the cut")
        ca.close()
        cb.close()

        cut(a, (b, c))
        # Every link is classified: nothing crosses the cut unnoticed.
        time.sleep(0.5)
        for k in cluster:
            assert None not in k.front.sources(), k.front.sources()
        ca, cb = Conn(a), Conn(b)
        k = keys
        # Side A, first in time.
        ca.ok(OP_ACTIVATE, [uid_item(k["compromised"])])
        ca.ok(OP_ACTIVATE, [uid_item(k["deactivated"])])
        ca.ok(OP_ACTIVATE, [uid_item(k["destroyed"])])
        ca.revoke(k["destroyed-compromised"], REASON_KEY_COMPROMISE)
        ca.ok(OP_MODIFY_ATTRIBUTE, [uid_item(k["b-wins"]), attr("x-Site", H.TEXT, "from-a", 0)])
        dup_a = ca.create_aes(256, name_attr("cut-dup-" + tag))
        only_a = ca.create_aes(128)
        time.sleep(0.05)
        # Side B, later.
        cb.revoke(k["compromised"], REASON_KEY_COMPROMISE)
        cb.ok(OP_ACTIVATE, [uid_item(k["deactivated"])])
        cb.revoke(k["deactivated"], REASON_CESSATION)
        cb.ok(OP_DESTROY, [uid_item(k["destroyed"])])
        cb.ok(OP_DESTROY, [uid_item(k["destroyed-compromised"])])
        cb.ok(OP_MODIFY_ATTRIBUTE, [uid_item(k["b-wins"]), attr("x-Site", H.TEXT, "from-b", 0)])
        cb.ok(OP_MODIFY_ATTRIBUTE, [uid_item(k["a-wins"]), attr("x-Site", H.TEXT, "from-b", 0)])
        dup_b = cb.create_aes(256, name_attr("cut-dup-" + tag))
        time.sleep(0.05)
        # Side A again, latest.
        ca.ok(OP_MODIFY_ATTRIBUTE, [uid_item(k["a-wins"]), attr("x-Site", H.TEXT, "from-a", 0)])
        ca.close()
        cb.close()

        # The cut holds: C (B's side) gets B's key, not A's.
        wait_for(lambda: has(c, dup_b), what="b's key on c")
        time.sleep(1.0)
        assert not has(c, only_a) and not has(c, dup_a) and not has(b, only_a)
        assert not has(a, dup_b)
    finally:
        for x in cluster:
            x.front.heal()

    # After the heal every node converges to the same merged state.
    wait_for(lambda: verified(a) and verified(b), timeout=60, what="cluster verify exit 0")
    want_state = {"compromised": STATE["COMPROMISED"], "deactivated": STATE["DEACTIVATED"],
                  "destroyed": STATE["DESTROYED"], "b-wins": STATE["PRE_ACTIVE"],
                  "a-wins": STATE["PRE_ACTIVE"],
                  "destroyed-compromised": STATE["DESTROYED_COMPROMISED"]}
    for node in cluster:
        cn = Conn(node)
        try:
            for n, uid in keys.items():
                assert cn.state(uid) == want_state[n], (node.node_id, n)
            assert text_attr(cn, keys["b-wins"], "x-Site") == "from-b"
            assert text_attr(cn, keys["a-wins"], "x-Site") == "from-a"
            # A destroyed key's material is gone: Get refuses it, and no
            # database holds its sealed blob any more (it did before).
            for n in ("destroyed", "destroyed-compromised"):
                assert cn.call(OP_GET, [uid_item(keys[n])])[0] == H.STATUS_FAILED
                assert blob(node, keys[n]) is None, (node.node_id, n)
            assert blob(node, keys["compromised"]) is not None
            # Both keys named during the cut exist; Locate returns both,
            # newest first (docs/cluster.md, section 3).
            assert cn.locate_name("cut-dup-" + tag) == [dup_b, dup_a], node.node_id
            assert cn.state(only_a) == STATE["PRE_ACTIVE"]
        finally:
            cn.close()


def test_partial_cut_converges_through_the_third_node(cluster):
    a, b, c = cluster
    ca = Conn(a)
    shared = ca.create_aes(256, attr("x-Site", H.TEXT, "initial"))
    wait_for(lambda: has(b, shared) and has(c, shared), what="the shared key everywhere")
    ca.close()
    try:
        cut(a, (b,))
        ca, cb = Conn(a), Conn(b)
        t0 = time.monotonic()
        from_a = [ca.create_aes(256) for _ in range(20)]
        from_b = [cb.create_aes(128) for _ in range(20)]
        cb.ok(OP_MODIFY_ATTRIBUTE, [uid_item(shared), attr("x-Site", H.TEXT, "from-b", 0)])
        wait_for(lambda: all(has(b, u) for u in from_a) and all(has(a, u) for u in from_b),
                 timeout=30, what="each side's keys on the other side, through c")
        wait_for(lambda: text_attr(ca, shared, "x-Site") == "from-b", timeout=30,
                 what="b's edit on a")
        print("partial cut: both sides converged %.1f s after the first write"
              % (time.monotonic() - t0))
        assert all(has(c, u) for u in from_a + from_b)
        ca.close()
        cb.close()
    finally:
        for x in cluster:
            x.front.heal()
    wait_for(lambda: verified(a) and verified(b) and verified(c), timeout=60,
             what="cluster verify exit 0 after the heal")
