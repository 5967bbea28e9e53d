"""tests/interop/test_hsm_pkcs11.py: key protection at rest, rotation and HSM
availability, against a real kmsd on a real SoftHSM2 token.

Each test makes its own SoftHSM2 token (SOFTHSM2_CONF in a temp dir), the
master key inside it with `kmsctl hsm init --pkcs11`, and a kmsd with
hsm.provider pkcs11 (some tests also with the file provider). Token removal
is simulated as in tests/unit/test_hsm_pkcs11.c: the token's directory is
moved out of directories.tokendir and back.

- no key's plaintext bytes in the SQLite file, its -wal, kmsd's log or the
  audit log (pkcs11 and file providers);
- restart with the token: every key reads back identical; a wrong PIN or a
  missing token: kmsd exits non-zero with one clear line;
- a sealed blob copied onto another row: that Get answers Cryptographic
  Failure, other keys still work;
- `kmsctl rotate master` and `rotate store-key` under 8 client threads of
  Create/Get: no request fails; kill -9 in the middle of the re-encryption
  of 2000 keys, restart: it resumes by itself and every key reads back;
- token removed while serving: key operations fail within 1 s ("HSM
  unavailable", or the connection is closed), the port refuses connections,
  idle connections are closed, and all come back with the token.
"""
import base64
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

import kmsd_harness as H

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4711"

pytestmark = pytest.mark.skipif(not os.path.exists(MODULE), reason="SoftHSM2 not installed")

OP_CREATE, OP_GET = 1, 10
T_OBJECT_TYPE, T_TEMPLATE_ATTRIBUTE, T_ATTRIBUTE = 0x420057, 0x420091, 0x420008
T_ATTR_NAME, T_ATTR_VALUE, T_KEY_MATERIAL = 0x42000A, 0x42000B, 0x420043
REASON_CRYPTOGRAPHIC_FAILURE, REASON_GENERAL_FAILURE = 0x0B, 0x100


class Token:
    """A SoftHSM2 token in its own directory; remove() / restore() it."""

    def __init__(self, base):
        self.dir = os.path.join(str(base), "softhsm")
        self.tokendir = os.path.join(self.dir, "tokens")
        self.hidden = os.path.join(self.dir, "removed")
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        self.pin_file = os.path.join(self.dir, "pin")
        os.makedirs(self.tokendir)
        os.makedirs(self.hidden)
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n" % self.tokendir)
        with open(self.pin_file, "w") as f:
            f.write(PIN + "\n")
        os.chmod(self.pin_file, 0o600)
        os.environ["SOFTHSM2_CONF"] = self.conf
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "kmsd", "--pin",
                        PIN, "--so-pin", "123456"], check=True, capture_output=True)

    def hsm_conf(self):
        return {"provider": "pkcs11", "module": MODULE, "token_label": "kmsd",
                "pin_file": self.pin_file, "key_label": "kmsd-master"}

    def _move(self, a, b):
        for n in os.listdir(a):
            os.rename(os.path.join(a, n), os.path.join(b, n))

    def remove(self):
        self._move(self.tokendir, self.hidden)

    def restore(self):
        self._move(self.hidden, self.tokendir)

    def labels(self):
        p = subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", "kmsd",
                            "--login", "--pin", PIN, "--list-objects", "--type", "secrkey"],
                           capture_output=True, text=True)
        return [l.split(":", 1)[1].strip() for l in p.stdout.splitlines()
                if l.strip().startswith("label:")]


@pytest.fixture
def token(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTHSM2_CONF", "")
    t = Token(tmp_path)
    monkeypatch.setenv("SOFTHSM2_CONF", t.conf)
    return t


def pkcs11_kmsd(kmsd_factory, token, start=True):
    k = kmsd_factory({"hsm": token.hsm_conf()}, start=False)
    p = subprocess.run([H.kmsctl_bin(), "hsm", "init", "--pkcs11", "--module", MODULE,
                        "--token-label", "kmsd", "--pin-file", token.pin_file, "--key-label",
                        "kmsd-master"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    if start:
        k.start()
    return k


def kmsctl(k, *args, timeout=600):
    return subprocess.run([H.kmsctl_bin(), "--config", k.conf_path] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def db_path(k):
    p = k.config()["store"]["path"]
    return p if os.path.isabs(p) else os.path.join(k.dir, p)


def audit_path(k):
    p = k.config().get("audit", {}).get("path", "")
    return p if not p or os.path.isabs(p) else os.path.join(k.dir, p)


# ------------------------------------------------------------ raw KMIP
def attr(name, typ, value):
    return H.item(T_ATTRIBUTE, H.STRUCT, [H.item(T_ATTR_NAME, H.TEXT, name),
                                          H.item(T_ATTR_VALUE, typ, value)])


def create_item():
    return H.batch_item(OP_CREATE, [
        H.item(T_OBJECT_TYPE, H.ENUM, 2),
        H.item(T_TEMPLATE_ATTRIBUTE, H.STRUCT, [
            attr("Cryptographic Algorithm", H.ENUM, 3),
            attr("Cryptographic Length", H.INT, 256),
            attr("Cryptographic Usage Mask", H.INT, 12)])])


def get_item(uid):
    return H.batch_item(OP_GET, [H.item("UniqueIdentifier", H.TEXT, uid)])


def batch_create(k, n, per=100):
    ids = []
    with k.raw_tls() as s:
        while len(ids) < n:
            m = min(per, n - len(ids))
            r = k.send_ttlv(H.request(*[create_item() for _ in range(m)]), sock=s, timeout=120)
            assert H.statuses(r) == [0] * m
            ids += H.find_all(H.decode(r), "UniqueIdentifier")
    return ids


def batch_get(k, ids, per=100):
    """{id: key bytes}; asserts every Get succeeded."""
    out = {}
    with k.raw_tls() as s:
        for i in range(0, len(ids), per):
            chunk = ids[i:i + per]
            r = k.send_ttlv(H.request(*[get_item(u) for u in chunk]), sock=s, timeout=120)
            assert H.statuses(r) == [0] * len(chunk), r.hex()[:400]
            mats = H.find_all(H.decode(r), T_KEY_MATERIAL)
            assert len(mats) == len(chunk)
            out.update(zip(chunk, mats))
    return out


def bad_encodings(secret):
    """Every way a key could leak in text or binary form."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(),
            base64.b64encode(secret), base64.b64encode(secret).rstrip(b"=")]


def assert_nowhere(paths, secrets):
    for p in paths:
        if not p or not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            data = f.read()
        for s in secrets:
            for enc in bad_encodings(s):
                assert enc not in data, "key material found in %s" % p


# ------------------------------------------------------------ (a)
@pytest.mark.parametrize("provider", ["pkcs11", "file"])
def test_no_plaintext_at_rest(kmsd_factory, token, provider):
    from kmip.core import enums
    from kmip.pie import objects
    k = pkcs11_kmsd(kmsd_factory, token) if provider == "pkcs11" else kmsd_factory()
    c = k.pykmip_client()
    try:
        ids = [c.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(10)]
        registered = [os.urandom(32) for _ in range(5)]
        for v in registered:
            ids.append(c.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, v)))
        secrets = [c.get(i).value for i in ids]
        assert secrets[10:] == registered
    finally:
        c.close()
    db = db_path(k)
    files = [db, db + "-wal", k.log_path, audit_path(k)]
    assert os.path.getsize(db + "-wal") > 0 or os.path.getsize(db) > 0
    assert_nowhere(files, secrets)            # while running (WAL not checkpointed)
    k.stop()
    assert_nowhere(files, secrets)            # after the closing checkpoint
    assert "Get" in k.log_text()              # the log we searched is the real one


# ------------------------------------------------------------ (b)
def start_fails(k, timeout=60):
    p = subprocess.run([H.kmsd_bin(), "-c", k.conf_path], capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def test_restart_and_refusals(kmsd_factory, token):
    from kmip.core import enums
    k = pkcs11_kmsd(kmsd_factory, token)
    c = k.pykmip_client()
    ids = [c.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(10)]
    vals = {i: c.get(i).value for i in ids}
    c.close()
    k.stop()

    k.start()
    c = k.pykmip_client()
    assert {i: c.get(i).value for i in ids} == vals
    c.close()
    k.stop()

    # Wrong PIN: non-zero exit, one clear line.
    with open(token.pin_file, "w") as f:
        f.write("0000\n")
    rc, out = start_fails(k)
    assert rc != 0
    assert "wrong PIN" in out, out
    with open(token.pin_file, "w") as f:
        f.write(PIN + "\n")

    # No token.
    token.remove()
    rc, out = start_fails(k)
    assert rc != 0
    assert "not found" in out and "kmsd" in out, out
    token.restore()

    k.start()
    c = k.pykmip_client()
    assert {i: c.get(i).value for i in ids} == vals
    c.close()


# ------------------------------------------------------------ (c)
def test_moved_blob_is_cryptographic_failure(kmsd_factory, token):
    from kmip.core import enums
    from kmip.pie.exceptions import KmipOperationFailure
    k = pkcs11_kmsd(kmsd_factory, token)
    c = k.pykmip_client()
    a, b, other = [c.create(enums.CryptographicAlgorithm.AES, 256) for _ in range(3)]
    va, vo = c.get(a).value, c.get(other).value
    c.close()
    k.stop()
    con = sqlite3.connect(db_path(k))
    blob = con.execute("SELECT blob FROM objects WHERE id = ?", (a,)).fetchone()[0]
    con.execute("UPDATE objects SET blob = ? WHERE id = ?", (blob, b))
    con.commit()
    con.close()
    k.start()
    c = k.pykmip_client()
    with pytest.raises(KmipOperationFailure) as e:
        c.get(b)
    assert e.value.reason == enums.ResultReason.CRYPTOGRAPHIC_FAILURE
    assert c.get(a).value == va
    assert c.get(other).value == vo
    c.close()
    assert k.running()


# ------------------------------------------------------------ (d)
class Load:
    """8 threads of Create + Get until stopped; every failure is recorded."""

    def __init__(self, k, n=8):
        self.k, self.stop, self.errors, self.ops = k, threading.Event(), [], 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(n)]

    def run(self):
        from kmip.core import enums
        try:
            c = self.k.pykmip_client()
        except Exception as e:  # pragma: no cover - reported below
            self.errors.append("connect: %r" % e)
            return
        try:
            while not self.stop.is_set():
                try:
                    uid = c.create(enums.CryptographicAlgorithm.AES, 256)
                    v = c.get(uid).value
                    assert len(v) == 32
                    with self.lock:
                        self.ops += 2
                except Exception as e:
                    self.errors.append(repr(e))
                    return
        finally:
            c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_rotations_under_load(kmsd_factory, token):
    k = pkcs11_kmsd(kmsd_factory, token)
    ids = batch_create(k, 300)
    before = batch_get(k, ids)
    with Load(k) as load:
        time.sleep(1)
        p = kmsctl(k, "--json", "rotate", "master")
        assert p.returncode == 0, p.stdout + p.stderr
        m = json.loads(p.stdout)
        assert m["master"] == "kmsd-master-2" and m["previous"] == "kmsd-master"
        assert m["dsks_rewrapped"] == 1
        p = kmsctl(k, "--json", "rotate", "store-key")
        assert p.returncode == 0, p.stdout + p.stderr
        st = json.loads(p.stdout)
        assert st["state"] == "done" and st["failed"] == 0 and st["dsk"] == 2
        assert st["done"] >= 300
        time.sleep(1)
    assert load.errors == [], load.errors
    assert load.ops > 20
    assert batch_get(k, ids) == before
    # The old master key is kept, the new one exists; meta names the new one.
    labels = token.labels()
    assert "kmsd-master" in labels and "kmsd-master-2" in labels
    k.stop()
    con = sqlite3.connect(db_path(k))
    meta = dict(con.execute("SELECT key, value FROM meta WHERE key LIKE 'master.%'"))
    left = con.execute("SELECT count(*) FROM objects WHERE dsk_id NOT IN (0, 2)").fetchone()[0]
    con.close()
    assert bytes(meta["master.current"]) == b"kmsd-master-2"
    assert left == 0
    # Restart: start-up takes the master key from meta, not from hsm.key_label.
    k.start()
    assert batch_get(k, ids) == before
    assert "kmsd-master-2" in k.log_text()


def test_kill_during_store_key_rotation_resumes(kmsd_factory, token, monkeypatch):
    monkeypatch.setenv("KMSD_REENCRYPT_BATCH", "20")
    monkeypatch.setenv("KMSD_REENCRYPT_THROTTLE_MS", "40")
    k = pkcs11_kmsd(kmsd_factory, token)
    ids = batch_create(k, 2000)
    before = batch_get(k, ids)
    p = kmsctl(k, "--json", "rotate", "store-key", "--no-wait")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["dsk"] == 2
    deadline = time.time() + 60
    while time.time() < deadline:
        st = json.loads(kmsctl(k, "--json", "rotate", "status").stdout)
        if st["target_dsk"] == 2 and st["done"] >= 200:
            break
        time.sleep(0.1)
    assert st["state"] == "running" and 0 < st["done"] < 2000, st
    k.proc.send_signal(signal.SIGKILL)
    k.proc.wait(10)
    con = sqlite3.connect(db_path(k))
    moved = con.execute("SELECT count(*) FROM objects WHERE dsk_id = 2").fetchone()[0]
    con.close()
    assert 0 < moved < 2000, moved  # the kill really landed mid-way

    monkeypatch.setenv("KMSD_REENCRYPT_THROTTLE_MS", "0")
    log_at = len(k.log_text())
    k.start()
    k.wait_log(r"re-encrypt: done: \d+ objects moved onto data-store key 2", timeout=120,
               start=log_at)
    assert batch_get(k, ids) == before
    st = json.loads(kmsctl(k, "--json", "rotate", "status").stdout)
    assert st["state"] == "done" and st["failed"] == 0 and st["dsk"] == 2
    k.stop()
    con = sqlite3.connect(db_path(k))
    left = con.execute("SELECT count(*) FROM objects WHERE dsk_id NOT IN (0, 2)").fetchone()[0]
    con.close()
    assert left == 0


# ------------------------------------------------------------ (e)
def refused(k):
    try:
        socket_ = H.socket.create_connection((k.host, k.port), timeout=1)
        socket_.close()
        return False
    except ConnectionRefusedError:
        return True


def test_token_removed_while_serving(kmsd_factory, token):
    from kmip.core import enums
    from kmip.pie.exceptions import KmipOperationFailure
    k = pkcs11_kmsd(kmsd_factory, token)
    c = k.pykmip_client()
    uid = c.create(enums.CryptographicAlgorithm.AES, 256)
    val = c.get(uid).value
    idle = k.raw_tls()  # an idle connection, open before the token goes
    log_at = len(k.log_text())

    token.remove()
    t0 = time.time()
    # Requests on a connection still open are answered at once: refused
    # with "HSM unavailable" (the gate), or the connection is closed by the
    # server (it stops serving); never a hang, never a success for long.
    failure = None
    while time.time() - t0 < 3:
        t1 = time.time()
        try:
            c.create(enums.CryptographicAlgorithm.AES, 256)
        except KmipOperationFailure as e:
            failure = e
            assert e.reason == enums.ResultReason.GENERAL_FAILURE
            assert "HSM unavailable" in str(e)
        except Exception as e:  # the server closed the connection
            failure = e
        assert time.time() - t1 < 1.0  # answered at once, never hangs
        if failure is not None:
            break
        time.sleep(0.05)
    assert failure is not None, "Create kept succeeding without the token"
    assert time.time() - t0 < 1.5
    c.close()
    # The node gets out of the way: new connections are refused, and the
    # idle one is closed, so that clients fail over to another server.
    deadline = time.time() + 2
    while not refused(k) and time.time() < deadline:
        time.sleep(0.05)
    assert refused(k)
    assert H.closed_by_peer(idle, timeout=2.0)
    idle.close()
    p = kmsctl(k, "--json", "status")
    assert p.returncode == 1, p.stdout + p.stderr
    assert json.loads(p.stdout)["hsm_state"] != "ok"

    token.restore()
    deadline = time.time() + 15
    while refused(k) and time.time() < deadline:
        time.sleep(0.1)
    assert not refused(k), "listener did not re-open"
    c2 = k.pykmip_client()
    assert c2.get(uid).value == val
    assert len(c2.get(c2.create(enums.CryptographicAlgorithm.AES, 256)).value) == 32
    c2.close()
    p = kmsctl(k, "status")
    assert p.returncode == 0, p.stdout + p.stderr
    log = k.log_text()[log_at:]
    assert log.count("hsm: unavailable") == 1, log[-3000:]
    assert log.count("hsm: available again") == 1
    # One line for each change of the node's readiness.
    assert log.count("not ready: HSM unavailable: KMIP listener closed") == 1, log[-3000:]
    assert log.count("ready: serving keys again") == 1
    assert "not serving keys now" in log  # why the idle connection closed


# ------------------------------------------------------------ kmsctl rotate
def test_kmsctl_rotate_usage_and_exit_codes(kmsd_factory, monkeypatch):
    monkeypatch.setenv("KMSD_REENCRYPT_BATCH", "10")
    monkeypatch.setenv("KMSD_REENCRYPT_THROTTLE_MS", "50")
    k = kmsd_factory()
    p = kmsctl(k, "rotate", "--help")
    assert p.returncode == 0 and "store-key" in p.stdout and "--no-wait" in p.stdout
    assert kmsctl(k, "rotate").returncode == 2
    assert kmsctl(k, "rotate", "sideways").returncode == 2
    assert kmsctl(k, "rotate", "master", "--no-wait").returncode == 2
    batch_create(k, 300)
    p = kmsctl(k, "--json", "rotate", "store-key", "--no-wait")
    assert p.returncode == 0, p.stderr
    # A second store-key rotation while the first one runs is refused (exit 1).
    p = kmsctl(k, "rotate", "store-key", "--no-wait")
    assert p.returncode == 1 and "still running" in p.stderr, p.stdout + p.stderr
    # Waiting mode follows the running pass to its end.
    deadline = time.time() + 60
    while time.time() < deadline:
        st = json.loads(kmsctl(k, "--json", "rotate", "status").stdout)
        if st["state"] == "done":
            break
        time.sleep(0.2)
    assert st["state"] == "done" and st["done"] == 300 and st["failed"] == 0, st
    p = kmsctl(k, "rotate", "store-key")
    assert p.returncode == 0 and "data-store key 3 is current: 300 objects" in p.stdout, p.stdout
    k.stop()
    assert kmsctl(k, "rotate", "status").returncode == 3  # kmsd unreachable
    # Each new data-store key and each change of the current one is a
    # change-log row (kind 3 = dsk) naming it, for replication; never its bytes.
    con = sqlite3.connect(db_path(k))
    rows = [r[0] for r in con.execute("SELECT key FROM change_log WHERE kind = 3 ORDER BY seq")]
    con.close()
    assert rows == ["1", "current", "2", "current", "3", "current"], rows
