"""tests/interop/test_bench_smoke.py: kmipbench against a real kmsd and PyKMIP.

Runs the built kmipbench ($KMSD_BUILD/kmipbench) for a few hundred
requests of each workload against a kmsd started by the harness and
asserts zero errors, the exact number of operations asked for, and a
well-formed --json line; checks that failures are counted by Result
Reason, that --resume really resumes TLS sessions, that --rate paces the
sends, and one short run against the PyKMIP server (skipped with the
reason when it cannot start). It does not judge performance: that is
bench/compare.sh.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmsd_harness  # noqa: E402


def kmipbench_bin():
    return os.path.join(kmsd_harness.build_dir(), "kmipbench")


pytestmark = pytest.mark.skipif(not os.access(kmipbench_bin(), os.X_OK),
                                reason="kmipbench not built (make BUILD=... all)")


def bench(host, port, ca, cert, key, *args, pid=None, timeout=120):
    cmd = [kmipbench_bin(), "--host", host, "--port", str(port), "--ca", ca, "--cert", cert,
           "--key", key, "--json", *map(str, args)]
    if pid:
        cmd += ["--server-pid", str(pid)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "no JSON line from kmipbench (rc %d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    d = json.loads(lines[-1])
    for k in ("requests_per_s", "errors", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
              "cpu_us_per_req", "errors_by_reason"):
        assert k in d, k
    return p.returncode, d


def run_kmsd(k, *args, **kw):
    return bench(k.host, k.port, k.ca, k.cert, k.key, *args, pid=k.pid, **kw)


@pytest.mark.parametrize("op,per_op", [("get", 1), ("create", 1), ("vcenter", 4), ("locate", 1),
                                       ("getattrs", 1), ("create-destroy", 2),
                                       ("mix:get=50,create=30,locate=10,vcenter=10", None)])
def test_workload_against_kmsd(kmsd, op, per_op):
    rc, d = run_kmsd(kmsd, "--op", op, "--requests", 300, "--connections", 8, "--warmup", 0,
                     "--keys", 20)
    assert rc == 0, d
    assert d["errors"] == 0 and d["errors_by_reason"] == {}
    assert d["operations"] == 300
    if per_op:
        assert d["requests"] == 300 * per_op
    assert d["requests_per_s"] > 0
    assert 0 < d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"] <= d["p999_ms"] <= d["max_ms"] * 1.01
    assert d["server_cpu_s"] is not None and d["server_cpu_s"] >= 0
    assert d["server_rss_kb"] > 0


def test_vcenter_keys_really_exist(kmsd):
    """The vcenter sequence creates, activates and reads keys: they are in kmsd afterwards."""
    rc, d = run_kmsd(kmsd, "--op", "vcenter", "--requests", 20, "--connections", 2, "--warmup", 0)
    assert rc == 0 and d["operations"] == 20
    c = kmsd.pykmip_client()
    try:
        ids = c.locate()
        assert len(ids) == 20  # exactly the 20 sequences: no traffic before the start
        from kmip.core import enums
        attrs = c.get_attributes(ids[0], ["State", "Cryptographic Length"])[1]
        got = {a.attribute_name.value: a.attribute_value.value for a in attrs}
        assert got["State"] == enums.State.ACTIVE
        assert got["Cryptographic Length"] == 256
    finally:
        c.close()


def test_interval_report(kmsd):
    """--interval: one JSON object per interval with its own figures and the
    server's RSS and descriptors; create-destroy leaves no live key behind."""
    c = kmsd.pykmip_client()
    try:
        live_before = len(c.locate())  # Locate leaves destroyed objects out
        cmd = [kmipbench_bin(), "--host", kmsd.host, "--port", str(kmsd.port), "--ca", kmsd.ca,
               "--cert", kmsd.cert, "--key", kmsd.key, "--json", "--server-pid", str(kmsd.pid),
               "--op", "create-destroy", "--duration", "3", "--interval", "1", "--connections", "4",
               "--warmup", "0"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        objs = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        ivals, final = objs[:-1], objs[-1]
        assert len(ivals) == 3, p.stdout
        for d in ivals:
            assert d["operations_per_s"] > 0 and d["errors"] == 0, d
            assert 0 < d["p50_ms"] <= d["p99_ms"] <= d["max_ms"] * 1.01, d
            assert d["server_rss_kb"] > 0 and d["server_fds"] > 4 and d["load1"] >= 0, d
        total = sum(d["operations_per_s"] for d in ivals)
        assert abs(total - final["operations_per_s"] * 3) <= 0.2 * total + 5, (total, final)
        assert final["requests"] == 2 * final["operations"], final
        assert len(c.locate()) == live_before
    finally:
        c.close()


def test_evicted_connections_are_counted_not_fatal(tmp_path):
    """kmsd closing kmipbench's connections (more of them than
    max_connections) makes writes fail with EPIPE: counted as errors, and
    the run ends with its report instead of dying of SIGPIPE."""
    k = kmsd_harness.Kmsd(tmp_path, {"limits": {"max_connections": 8, "max_unauthenticated": 4}})
    try:
        cmd = [kmipbench_bin(), "--host", k.host, "--port", str(k.port), "--ca", k.ca,
               "--cert", k.cert, "--key", k.key, "--json", "--op", "get", "--keys", "2",
               "--duration", "2", "--connections", "40", "--warmup", "0"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert p.returncode in (0, 3), "kmipbench ended by signal %d\n%s" % (-p.returncode, p.stderr)
        d = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
        assert d["requests"] > 0, d
        assert d["errors"] > 0, d
    finally:
        k.kill()


def test_failures_are_counted_by_reason(kmsd):
    """A protocol version the server refuses: every request fails, counted by its reason."""
    rc, d = run_kmsd(kmsd, "--op", "create", "--requests", 50, "--connections", 2, "--warmup", 0,
                     "--kmip-version", "9.9")
    assert rc == 3
    assert d["requests"] == 0
    assert d["errors"] == 50, d
    assert sum(d["errors_by_reason"].values()) == 50
    assert "connect" not in d["errors_by_reason"]


def test_new_connection_with_and_without_resumption(kmsd):
    rc, d = run_kmsd(kmsd, "--op", "get", "--new-conn", "--tls", "1.3", "--requests", 40,
                     "--connections", 2, "--warmup", 0, "--keys", 5)
    assert rc == 0 and d["errors"] == 0
    assert d["handshakes"] >= 40 and d["resumed"] == 0
    rc, d = run_kmsd(kmsd, "--op", "get", "--new-conn", "--resume", "--tls", "1.2", "--requests", 40,
                     "--connections", 2, "--warmup", 0, "--keys", 5)
    assert rc == 0 and d["errors"] == 0
    assert d["resumed"] >= 30, d  # all but each slot's first connection


def test_open_loop_rate_is_paced(kmsd):
    rc, d = run_kmsd(kmsd, "--op", "get", "--rate", 200, "--duration", 2, "--connections", 4,
                     "--warmup", 0.5, "--keys", 5)
    assert rc == 0 and d["errors"] == 0
    assert 150 <= d["requests_per_s"] <= 250, d


def test_idle_connections_are_held(kmsd):
    rc, d = run_kmsd(kmsd, "--idle", 50, "--duration", 1)
    assert rc == 0
    assert d["idle_established"] == 50 and d["idle_failed"] == 0


def test_sqlite_floor(tmp_path):
    p = subprocess.run([kmipbench_bin(), "--sqlite-floor", str(tmp_path / "f.db"), "--requests", "50",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["sqlite_commits_per_s"] > 0


def test_tls_costs(tmp_path):
    """--tls-costs: real handshakes in process; a client certificate costs
    the server more than none, a resumption less than a full handshake."""
    k = kmsd_harness.Kmsd(str(tmp_path / "certs"), start=False)  # only for its certificates
    p = subprocess.run([kmipbench_bin(), "--tls-costs", "--ca", k.ca, "--cert", k.cert, "--key",
                        k.key, "--server-cert", k.server_cert, "--server-key", k.server_key,
                        "--requests", "40", "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(p.stdout.splitlines()[-1])
    assert d["failed"] == 0
    c = d["tls_costs_us"]
    assert c["handshake_mtls"] > c["handshake_no_client_cert"] > 0
    assert 0 < c["handshake_resumed"] < c["handshake_mtls"]
    for piece in ("parse_client_cert", "verify_client_chain", "ecdsa_p256_sign", "ecdsa_p256_verify",
                  "x25519", "ecdhe_p256", "ssl_new_free"):
        assert c[piece] > 0, piece
    # A wrong key pair is refused, not measured.
    p = subprocess.run([kmipbench_bin(), "--tls-costs", "--ca", k.ca, "--cert", k.cert, "--key",
                        k.server_key, "--server-cert", k.server_cert, "--server-key", k.server_key,
                        "--requests", "5"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_against_pykmip_server(tmp_path):
    """The same generator against an independent KMIP server (PyKMIP 0.10, TLS 1.2)."""
    k = kmsd_harness.Kmsd(str(tmp_path / "certs"), start=False)  # only for its certificates
    port = kmsd_harness.free_port()
    (tmp_path / "policies").mkdir()
    conf = tmp_path / "server.conf"
    conf.write_text("[server]\nhostname=127.0.0.1\nport=%d\ncertificate_path=%s\nkey_path=%s\n"
                    "ca_path=%s\nauth_suite=TLS1.2\npolicy_path=%s\nenable_tls_client_auth=True\n"
                    "logging_level=WARNING\ndatabase_path=%s\n"
                    % (port, k.server_cert, k.server_key, k.ca, tmp_path / "policies",
                       tmp_path / "pykmip.db"))
    log = open(tmp_path / "pykmip.out", "w")
    proc = subprocess.Popen(["/usr/bin/python3", "-W", "ignore", "-c",
                             "from kmip.services.server import server; server.main()",
                             "-f", str(conf), "-l", str(tmp_path / "server.log")],
                            stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: PyKMIP forks
    try:
        deadline = time.time() + 30
        while not port_open(port):
            if proc.poll() is not None or time.time() > deadline:
                pytest.skip("PyKMIP server did not start within 30 s: %s"
                            % (tmp_path / "pykmip.out").read_text()[-500:])
            time.sleep(0.2)
        for op in ("get", "create", "vcenter"):
            rc, d = bench("127.0.0.1", port, k.ca, k.cert, k.key, "--op", op, "--requests", 40,
                          "--connections", 2, "--warmup", 0, "--keys", 10, pid=proc.pid)
            assert rc == 0 and d["errors"] == 0, d
            assert d["operations"] == 40
    finally:
        # The whole process group: PyKMIP's server forks children that
        # would otherwise outlive it (and the test run).
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        log.close()


def test_unanswered_requests_are_counted(tmp_path):
    """A TLS server that never answers: the request begun in the window is an error, not lost."""
    k = kmsd_harness.Kmsd(str(tmp_path / "certs"), start=False)  # only for its certificates
    port = kmsd_harness.free_port()
    proc = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", k.server_cert,
                             "-key", k.server_key, "-CAfile", k.ca, "-Verify", "1", "-quiet"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not port_open(port):
            assert proc.poll() is None and time.time() < deadline, "s_server did not start"
            time.sleep(0.1)
        t0 = time.time()
        rc, d = bench("127.0.0.1", port, k.ca, k.cert, k.key, "--op", "create", "--connections", 1,
                      "--duration", 1, "--warmup", 0)
        assert rc == 3
        assert d["requests"] == 0 and d["errors"] == 1
        assert d["errors_by_reason"] == {"no_response_5s_after_end": 1}
        assert time.time() - t0 < 20
    finally:
        proc.kill()
        proc.wait(timeout=10)
