"""kmsctl's progress bars against a real kmsd holding 3000 keys (created in
batches of 250 Create items per request): `backup`, `restore`, `rotate
store-key` and `cluster status --wait` (a joining node's catch-up, whose
HTTPS /readyz answers from the start) run on a pseudo-terminal (python's pty
module) draw a bar on stderr whose text parses (count/total, rate, ETA), at
least twice for the long ones, and end on a cleared line before the summary;
with stderr not a terminal, or with --json, nothing but the summary and no
control characters at all."""
import http.client
import json
import os
import pty
import re
import select
import ssl
import subprocess
import time

import pytest

from kmsd_harness import (STRUCT, INT, ENUM, TEXT, Kmsd, batch_item, free_port, item, kmsctl_bin,
                          kmsd_bin, request, statuses)

KEYS = 3000
PER_REQUEST = 250
BAR = re.compile(r"^(?P<label>[a-z -]+) \[(?P<bar>[#.]+)\] (?P<done>\d+)/(?P<total>\d+) objects"
                 r"(?:  (?P<rate>\d+)/s)?  ETA (?P<eta>--:--|\d+:\d\d(?::\d\d)?)$")
BAR_BYTES = re.compile(r"^verifying \[[#.]+\] [\d.]+ [KMG]?i?B/[\d.]+ [KMG]?i?B")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def create_request(n, prefix):
    def attr(name, typ, value):
        return item(0x420008, STRUCT, [item(0x42000A, TEXT, name), item(0x42000B, typ, value)])
    items = []
    for i in range(n):
        name = item(0x42000B, STRUCT, [item(0x420055, TEXT, "%s-%d" % (prefix, i)),
                                       item(0x420054, ENUM, 1)])
        tmpl = item(0x420091, STRUCT, [attr("Cryptographic Algorithm", ENUM, 3),
                                       attr("Cryptographic Length", INT, 256),
                                       attr("Cryptographic Usage Mask", INT, 12),
                                       item(0x420008, STRUCT, [item(0x42000A, TEXT, "Name"),
                                                               name])])
        items.append(batch_item(0x01, [item(0x420057, ENUM, 2), tmpl]))
    return request(*items)


def fill(k, total=KEYS):
    sock = k.raw_tls(timeout=120)
    try:
        for b in range(total // PER_REQUEST):
            st = statuses(k.send_ttlv(create_request(PER_REQUEST, "k%d" % b), sock=sock,
                                      timeout=120))
            assert st == [0] * PER_REQUEST, st[:5]
    finally:
        sock.close()


def readyz(port, ca):
    """GET /readyz on kmsd's HTTPS listener: (status, JSON body)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/readyz")
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def run_pty(args, timeout=180):
    """kmsctl ARGS with stdin, stdout and stderr on a pseudo-terminal of 100
    columns; (exit status, everything it wrote)."""
    master, slave = pty.openpty()
    import fcntl, struct, termios  # noqa: E401 - only here
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen([kmsctl_bin(), *args], stdin=slave, stdout=slave, stderr=slave,
                         close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    # The terminal turns "\n" into "\r\n": undo that, so a lone "\r" is ours.
    return p.wait(timeout=30), out.decode("utf-8", "replace").replace("\r\n", "\n")


def bars(text):
    """The bar states drawn: every piece between carriage returns that is
    not blank, with the summary lines removed."""
    return [s.strip() for s in re.split(r"[\r\n]", text) if s.strip()]


def check_tty_run(text, label, want_total, min_draws=2):
    """The bar parses, counts towards want_total, is drawn min_draws times,
    and the line is cleared (spaces, then a carriage return) before the
    summary; returns the summary."""
    assert "\x1b" not in text, repr(text[:200])
    body, _, summary = text.rpartition("\r")
    drawn = [b for b in bars(body) if BAR.match(b)]
    matches = [BAR.match(b) for b in drawn if BAR.match(b).group("label") == label]
    assert len(matches) >= min_draws, (label, bars(body)[:10])
    for m in matches:
        assert int(m.group("total")) == want_total
        assert 0 <= int(m.group("done")) <= want_total
    dones = [int(m.group("done")) for m in matches]
    assert dones == sorted(dones)
    assert any(m.group("rate") for m in matches), matches[-1].group(0)
    assert any(m.group("eta") != "--:--" for m in matches)
    # The last bar was overwritten by blanks: the cleared line.
    last_cr = body.rfind("\r")
    assert body[last_cr + 1:].strip(" ") == "", repr(body[-200:])
    for line in body.split("\n")[-1:]:
        assert len(line.split("\r")[-1]) < 100
    return summary


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress")
    os.environ["KMSD_REENCRYPT_THROTTLE_MS"] = "40"
    try:
        k = Kmsd(d, peer=True, node_id="a")
    finally:
        del os.environ["KMSD_REENCRYPT_THROTTLE_MS"]
    fill(k)
    yield d, k
    k.stop()


def test_backup_and_restore_draw_a_bar_on_a_terminal(filled, tmp_path):
    d, k = filled
    pw = tmp_path / "pass"
    pw.write_text("progress bars please\n")
    out = tmp_path / "kms.bak"
    rc, text = run_pty(["--config", k.conf_path, "backup", "--out", str(out),
                        "--passphrase-file", str(pw)])
    assert rc == 0, text
    summary = check_tty_run(text, "backing up", KEYS)
    assert "backed up %d objects to %s" % (KEYS, out) in summary

    other = Kmsd(tmp_path / "other")
    try:
        rc, text = run_pty(["--config", other.conf_path, "restore", "--in", str(out),
                            "--passphrase-file", str(pw)])
        assert rc == 0, text
        summary = check_tty_run(text, "restoring", KEYS, min_draws=1)
        assert any(BAR_BYTES.match(b) for b in bars(text)), bars(text)[:5]
        assert "restored %d objects" % KEYS in summary
    finally:
        other.stop()

    # Not a terminal, and --json: the summary only, no control characters.
    out2 = tmp_path / "kms2.bak"
    p = k.kmsctl("backup", "--out", str(out2), "--passphrase-file", str(pw))
    assert p.stderr == "" and not CONTROL.search(p.stdout), repr(p.stdout + p.stderr)
    assert p.stdout == "backed up %d objects to %s\n" % (KEYS, out2)
    out3 = tmp_path / "kms3.bak"
    rc, text = run_pty(["--config", k.conf_path, "--json", "backup", "--out", str(out3),
                        "--passphrase-file", str(pw)])
    assert rc == 0
    assert not CONTROL.search(text.replace("\n", "")), repr(text[:300])
    assert json.loads(text)["objects"] == KEYS


def test_rotate_store_key_draws_a_bar(filled):
    d, k = filled
    rc, text = run_pty(["--config", k.conf_path, "rotate", "store-key"])
    assert rc == 0, text
    summary = check_tty_run(text, "re-encrypting", KEYS)
    assert re.search(r"data-store key \d+ is current: %d objects re-encrypted, 0 failed" % KEYS,
                     summary), summary
    # --json on a terminal: the final record only.
    rc, text = run_pty(["--config", k.conf_path, "--json", "rotate", "store-key"])
    assert rc == 0, text
    assert not CONTROL.search(text.replace("\n", "")), repr(text[:300])
    rec = json.loads(text)
    assert rec["state"] == "done" and rec["done"] == KEYS


def test_cluster_status_wait_follows_the_catch_up(filled, tmp_path):
    d, k = filled
    token = k.invite()
    b = Kmsd(tmp_path / "b", join=token, node_id="b", client_of=k, start=False)
    http_port = free_port()
    b.configure({"http": {"listen": ["127.0.0.1:%d" % http_port]}})
    log = open(b.log_path, "ab")
    b.proc = subprocess.Popen([kmsd_bin(), "-c", b.conf_path],
                              stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        # A relative admin.socket is relative to the configuration's folder.
        sock = os.path.join(os.path.dirname(b.conf_path), b.config()["admin"]["socket"])
        deadline = time.time() + 60
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.01)
        # The HTTPS listener is open from the start, while the KMIP one
        # waits for the catch-up: /readyz says why, then "ready".
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                readyz(http_port, b.ca)
                break
            except OSError:
                time.sleep(0.05)
        rc, text = run_pty(["--config", b.conf_path, "cluster", "status", "--wait"])
        assert rc in (0, 1), text  # 1: a node is not "ok" yet (still linking)
        assert "\x1b" not in text
        body, _, summary = text.rpartition("\r")
        drawn = bars(body)
        for s in drawn:  # whatever was drawn parses
            m = BAR.match(s)
            assert m or s.startswith("waiting for peers "), s
            if m:
                assert m.group("label") == "catching up"
                assert int(m.group("total")) >= KEYS
        assert body[body.rfind("\r") + 1:].strip(" ") == "" if drawn else True
        assert "NODE" in summary and "(this node)" in summary
        st = json.loads(b.kmsctl("--json", "cluster", "status", check=False).stdout)
        me = [r for r in st if r["self"]][0]
        assert me["ready"] is True
        # /readyz follows the server's readiness, re-evaluated every 250 ms.
        deadline = time.time() + 5
        while readyz(http_port, b.ca)[0] != 200 and time.time() < deadline:
            time.sleep(0.05)
        assert readyz(http_port, b.ca) == (200, {"status": "ready"})
        # The catch-up is recorded on the peer it came from.
        peer = [r for r in st if r["node"] == "a"][0]
        assert peer["catchup_total"] >= KEYS and peer["catchup_done"] == peer["catchup_total"]
        # Not a terminal: no bar, the table only.
        p = b.kmsctl("cluster", "status", "--wait", check=False)
        assert not CONTROL.search(p.stdout + p.stderr.replace("\n", "")), repr(p.stderr)
    finally:
        b.stop()
