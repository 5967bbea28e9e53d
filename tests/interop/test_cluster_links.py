"""tests/interop/test_cluster_links.py: push links between real kmsd
processes (docs/cluster.md, "Peer links").

- a node invited with `cluster invite --peer-addr` under another name than
  its node-list address is configured (by `cluster join`) with both
  addresses of one node: it keeps one link to it instead of the two
  replacing each other every 100 ms.
"""
import time

import kmsd_harness as H
from kmsd_harness import wait_for


def test_two_addresses_of_one_node_keep_one_link(tmp_path):
    a = H.Kmsd(str(tmp_path / "a"), peer=True, node_id="a")
    b = None
    try:
        tok = a.invite("--peer-addr", "localhost:%d" % a.peer_port)
        b = H.Kmsd(str(tmp_path / "b"), start=False, join=tok, node_id="b", client_of=a)
        assert sorted(b.config()["replication"]["peers"]) == sorted(
            ["127.0.0.1:%d" % a.peer_port, "localhost:%d" % a.peer_port])
        b.start()
        wait_for(lambda: "to node a open" in b.log_text(), what="b linked to a")
        # Both addresses may connect at once at start and one replace the
        # other once; after that the link stays.
        time.sleep(1)
        count = lambda: (b.log_text().count("to node a open"),
                         a.log_text().count("from node b closed: replaced by a newer link"))
        before = count()
        time.sleep(3)
        assert count() == before and before[0] <= 2, (before, count())
        b.stop()
        a.stop()
    finally:
        a.kill()
        if b:
            b.kill()
