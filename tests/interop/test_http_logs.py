"""tests/interop/test_http_logs.py: machine-readable logs and audit copies.

- KMSD_LOG_FORMAT=json (the log.format setting): every line kmsd writes to
  stderr parses as one JSON object with ts, level, component and msg, and a
  KMIP request's line carries its fields (identity, tenant, op, status...);
- audit.syslog to a local UDP listener: each audit record arrives as an
  RFC 5424 message whose MSG is the audit file's line, byte for byte (the
  hash chain verifies on the copies too), with seq in structured data;
- audit.json_lines: the same lines, one per line, in a file;
- a syslog target that is down loses copies (counted), never the log.
"""
import hashlib
import json
import re
import socket
import time

import kmsd_harness as H

RFC5424 = re.compile(rb"^<(\d+)>1 (\S+) (\S+) kmsd (\d+) audit \[kmsd@32473 seq=\"(\d+)\"\] "
                     rb"\xef\xbb\xbf(\{.*\})$", re.S)


def test_json_log_lines(kmsd_factory, monkeypatch):
    monkeypatch.setenv("KMSD_LOG_FORMAT", "json")
    k = kmsd_factory()
    c = k.pykmip_client()
    from kmip.core import enums
    uid = c.create(enums.CryptographicAlgorithm.AES, 256)
    c.get(uid)
    c.close()
    k.wait_log(r'"op":"Get"')
    k.stop()
    lines = [l for l in k.log_text().splitlines() if l]
    assert len(lines) > 10
    reqs = []
    for l in lines:
        o = json.loads(l)  # every line is one JSON object
        assert list(o)[:4] == ["ts", "level", "component", "msg"], l
        assert o["level"] in ("error", "warn", "info", "debug")
        if o.get("op"):
            reqs.append(o)
    get = [o for o in reqs if o["op"] == "Get"][0]
    assert get["status"] == "Success" and get["object"] == uid and get["batch"] == 1
    assert get["identity"] and get["tenant"] == "default" and get["transport"] == "kmip"
    assert isinstance(get["us"], int) and get["addr"].startswith("127.0.0.1:")
    assert any(o["msg"] == "ready" for o in map(json.loads, lines))


def test_audit_to_syslog_and_json_lines(kmsd_factory, tmp_path):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    jl = tmp_path / "siem.jsonl"
    k = kmsd_factory({"audit": {"syslog": "udp:127.0.0.1:%d" % udp.getsockname()[1],
                                "syslog_facility": "local3", "json_lines": str(jl)}})
    c = k.pykmip_client()
    from kmip.core import enums
    uid = c.create(enums.CryptographicAlgorithm.AES, 256)
    c.get(uid)
    c.close()
    got = []
    while len(got) < 2:
        got.append(udp.recv(65536))
    udp.close()
    with open(k.dir + "/audit.log", "rb") as f:
        lines = f.read().splitlines()
    by_seq = {json.loads(l)["seq"]: l for l in lines}
    for dgram in got:
        m = RFC5424.match(dgram)
        assert m, dgram
        assert int(m.group(1)) == 19 * 8 + 6  # local3.info
        assert re.match(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", m.group(2))
        seq = int(m.group(5))
        assert by_seq[seq] == m.group(6)  # the chained line itself
    ops = [json.loads(RFC5424.match(d).group(6))["operation"] for d in got]
    assert ops == ["Create", "Get"]
    # JSON lines: the same records, and the chain verifies over them.
    deadline = time.time() + 5
    while time.time() < deadline and len(jl.read_bytes().splitlines()) < len(lines):
        time.sleep(0.05)
    copies = jl.read_bytes().splitlines()
    assert copies == lines
    prev = None
    for l in copies:
        o = json.loads(l)
        if prev is not None:
            assert o["prev"] == hashlib.sha256(prev).hexdigest()
        prev = l


def test_syslog_down_loses_copies_not_records(kmsd_factory):
    port = H.free_port()  # nothing listens there
    k = kmsd_factory({"audit": {"syslog": "tcp:127.0.0.1:%d" % port}})
    c = k.pykmip_client()
    from kmip.core import enums
    for _ in range(3):
        c.create(enums.CryptographicAlgorithm.AES, 256)
    c.close()
    k.wait_log(r"audit.syslog: dropping audit copies")
    deadline, n = time.time() + 5, 0
    while time.time() < deadline and n < 3:
        time.sleep(0.05)
        with open(k.dir + "/audit.log") as f:
            n = sum('"operation":"Create"' in l for l in f)
    assert n == 3
