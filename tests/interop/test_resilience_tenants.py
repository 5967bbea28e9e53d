"""tests/interop/test_resilience_tenants.py: listing and removing a tenant
larger than any single answer or read could hold.

120 000 object rows are put straight into the database of a stopped kmsd
(more than store_locate's 100 000-id cap; creating them over KMIP would
take minutes here). `kmsctl tenant list` reports the exact count (from
the tenant index, no ids read); `kmsctl tenant remove --force` deletes
them 1 000 per commit, logs its progress, removes the tenant and says how
many objects it deleted; kmsd's RSS stays flat meanwhile, and another
tenant's key is untouched and served.

What it deliberately does not check: the rows' key material (nobody reads
these rows; removal never opens a sealed blob).
"""
import json
import os
import sqlite3

import kmsd_harness as H
from test_store_durability import OP_GET, Conn, key_material, uid_item
from test_resilience_crash import create_payload

N = 120000


def test_list_and_remove_a_huge_tenant(tmp_path):
    k = H.Kmsd(tmp_path)
    try:
        k.kmsctl("tenant", "add", "big")
        c = Conn(k)
        st, reason, pl = c.call(0x01, create_payload())
        assert st == H.STATUS_SUCCESS, reason
        keep = H.find_all(pl, 0x420094)[0]
        c.close()
        k.stop()
        db = os.path.join(k.dir, k.config()["store"]["path"])
        con = sqlite3.connect(db)
        with con:
            con.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO objects (id, object_type, state, tenant, version, created_us, "
                "updated_us, archived, dsk_id, blob) SELECT printf('big-%06d', i), 2, 1, 'big', "
                "1, 1700000000000000 + i, 1700000000000000 + i, i % 7 = 0, 1, x'00' FROM n", (N,))
        con.close()
        k.start()

        rows = json.loads(k.kmsctl("--json", "tenant", "list").stdout)
        big = [r for r in rows if r["tenant"] == "big"]
        assert big and big[0]["objects"] == N, rows
        refused = k.kmsctl("tenant", "remove", "big", check=False)
        assert refused.returncode == 1 and "%d object(s)" % N in refused.stderr, refused.stderr

        rss0 = k.rss_kb()
        out = json.loads(k.kmsctl("--json", "tenant", "remove", "big", "--force",
                                  timeout=600).stdout)
        rec = out[0] if isinstance(out, list) else out
        assert rec["objects_deleted"] == N, out
        grown = k.rss_kb() - rss0
        assert grown < k.rss_slack_kb(64 * 1024), "RSS grew %d KiB removing the tenant" % grown
        assert "objects deleted" in k.log_text()  # progress lines
        rows = json.loads(k.kmsctl("--json", "tenant", "list").stdout)
        assert "big" not in [r["tenant"] for r in rows]
        c = Conn(k)
        st, reason, pl = c.call(OP_GET, [uid_item(keep)])
        assert st == H.STATUS_SUCCESS and [len(m) for m in key_material(pl)] == [32], reason
        c.close()
    finally:
        k.kill()
