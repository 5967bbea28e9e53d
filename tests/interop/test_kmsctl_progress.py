"""kmsctl's progress bars against a real kmsd holding 3000 keys (created in
batches of 250 Create items per request): `backup`, `restore`, `rotate
store-key` and `cluster status --wait` (a joining node's catch-up, whose
HTTPS /readyz answers from the start) run on a pseudo-terminal (python's pty
module) draw a bar on stderr whose text parses (count/total, rate, ETA), at
least twice for the long ones, and end on a cleared line before the summary;
with stderr not a terminal, or with --json, nothing but the summary and no
control characters at all.

kmsctl shows a rate (and so an ETA) only once a phase has lasted 50 ms; a
backup of 3000 keys is about that quick on a machine twice as fast as
this one. The backup test therefore measures how long its "backing up"
phase lasted (from the arrival of its first and last bar) and, when it
showed no rate and lasted under MIN_PHASE_S, adds keys in proportion and
backs up again: the key count grows with the machine's speed, the phase
does not shrink (the assertions judge a run that lasted long enough). The
re-encryption pass is throttled (40 ms per batch) and keeps its number
of batches when keys are added."""
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
                          kmsd_bin, report, request, statuses)

KEYS = 3000             # at start; the backup test adds more on a fast machine
MAX_KEYS = 48000
MIN_PHASE_S = 0.1       # twice what kmsctl needs to show a rate
PER_REQUEST = 250
REENCRYPT_BATCHES = KEYS // 64
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


def fill(k, total=KEYS, first=0):
    """Create `total` keys (a multiple of PER_REQUEST); batch numbers from
    `first` name them."""
    sock = k.raw_tls(timeout=120)
    try:
        for b in range(first, first + total // PER_REQUEST):
            st = statuses(k.send_ttlv(create_request(PER_REQUEST, "k%d" % b), sock=sock,
                                      timeout=120))
            assert st == [0] * PER_REQUEST, st[:5]
    finally:
        sock.close()


def reencrypt_env(keys):
    """kmsd's re-encryption pass in REENCRYPT_BATCHES throttled batches
    (about 2 s) whatever the key count."""
    return {"KMSD_REENCRYPT_THROTTLE_MS": "40",
            "KMSD_REENCRYPT_BATCH": str(max(64, -(-keys // REENCRYPT_BATCHES)))}


def grow(k, keys):
    """Fill k up to about `keys` keys (rounded up to whole requests, at
    most MAX_KEYS) and restart it with re-encryption batches to match."""
    keys = min(MAX_KEYS, -(-keys // PER_REQUEST) * PER_REQUEST)
    fill(k, keys - k.keys, first=k.keys // PER_REQUEST)
    k.keys = keys
    k.stop()
    k.env = dict(os.environ, **reencrypt_env(keys))
    k.start()


def arrival(stamps, pattern):
    """When the pty output (run_pty's stamps) first held `pattern`."""
    seen = b""
    for t, chunk in stamps:
        seen += chunk
        if pattern in seen:
            return t
    return None


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


def run_pty(args, timeout=180, stamps=None):
    """kmsctl ARGS with stdin, stdout and stderr on a pseudo-terminal of 100
    columns; (exit status, everything it wrote). `stamps`, a list, gets
    (time.monotonic(), bytes) for every piece read."""
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
            if stamps is not None:
                stamps.append((time.monotonic(), chunk))
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
    k = Kmsd(d, peer=True, node_id="a", env=reencrypt_env(KEYS))
    fill(k)
    k.keys = KEYS
    yield d, k
    k.stop()


def test_backup_and_restore_draw_a_bar_on_a_terminal(filled, tmp_path):
    d, k = filled
    pw = tmp_path / "pass"
    pw.write_text("progress bars please\n")
    for _ in range(4):
        out = tmp_path / ("kms-%d.bak" % k.keys)
        stamps = []
        rc, text = run_pty(["--config", k.conf_path, "backup", "--out", str(out),
                            "--passphrase-file", str(pw)], stamps=stamps)
        assert rc == 0, text
        t0 = arrival(stamps, b"backing up [")
        t1 = arrival(stamps, b" %d/%d objects" % (k.keys, k.keys))
        assert t0 is not None and t1 is not None, text
        took = t1 - t0
        rated = any(m and m.group("label") == "backing up" and m.group("rate")
                    for m in map(BAR.match, bars(text)))
        if rated or took >= MIN_PHASE_S or k.keys >= MAX_KEYS:
            break
        # Over before kmsctl could show a rate: scale the keys to the
        # measured speed (a phase seen as shorter than 20 ms counts as 20).
        grow(k, int(k.keys * 1.5 * MIN_PHASE_S / max(took, 0.02)))
    report("[progress] backing up %d objects: %.3f s from the first bar to the last"
           % (k.keys, took))
    assert rated or took >= MIN_PHASE_S, "backing up %d objects took %.3f s, under %.2f s: " \
                                         "test too small" % (k.keys, took, MIN_PHASE_S)
    summary = check_tty_run(text, "backing up", k.keys)
    assert "backed up %d objects to %s" % (k.keys, out) in summary

    other = Kmsd(tmp_path / "other")
    try:
        rc, text = run_pty(["--config", other.conf_path, "restore", "--in", str(out),
                            "--passphrase-file", str(pw)])
        assert rc == 0, text
        summary = check_tty_run(text, "restoring", k.keys, min_draws=1)
        assert any(BAR_BYTES.match(b) for b in bars(text)), bars(text)[:5]
        assert "restored %d objects" % k.keys in summary
    finally:
        other.stop()

    # Not a terminal, and --json: the summary only, no control characters.
    out2 = tmp_path / "kms2.bak"
    p = k.kmsctl("backup", "--out", str(out2), "--passphrase-file", str(pw))
    assert p.stderr == "" and not CONTROL.search(p.stdout), repr(p.stdout + p.stderr)
    assert p.stdout == "backed up %d objects to %s\n" % (k.keys, out2)
    out3 = tmp_path / "kms3.bak"
    rc, text = run_pty(["--config", k.conf_path, "--json", "backup", "--out", str(out3),
                        "--passphrase-file", str(pw)])
    assert rc == 0
    assert not CONTROL.search(text.replace("\n", "")), repr(text[:300])
    assert json.loads(text)["objects"] == k.keys


def test_rotate_store_key_draws_a_bar(filled):
    d, k = filled
    rc, text = run_pty(["--config", k.conf_path, "rotate", "store-key"])
    assert rc == 0, text
    summary = check_tty_run(text, "re-encrypting", k.keys)
    assert re.search(r"data-store key \d+ is current: %d objects re-encrypted, 0 failed" % k.keys,
                     summary), summary
    # --json on a terminal: the final record only.
    rc, text = run_pty(["--config", k.conf_path, "--json", "rotate", "store-key"])
    assert rc == 0, text
    assert not CONTROL.search(text.replace("\n", "")), repr(text[:300])
    rec = json.loads(text)
    assert rec["state"] == "done" and rec["done"] == k.keys


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
                assert int(m.group("total")) >= k.keys
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
        assert peer["catchup_total"] >= k.keys and peer["catchup_done"] == peer["catchup_total"]
        # Not a terminal: no bar, the table only.
        p = b.kmsctl("cluster", "status", "--wait", check=False)
        assert not CONTROL.search(p.stdout + p.stderr.replace("\n", "")), repr(p.stderr)
    finally:
        b.stop()
