"""tests/interop/test_store_durability.py: keys are never lost across restarts and crashes.

Against a real kmsd (from $KMSD_BUILD; tests/run.sh points it at the ASan
build) in a directory made by `kmsctl init`:

- Restart (graceful SIGTERM, and SIGKILL): a varied population is created
  over KMIP (AES keys with a Name and custom attributes, a registered
  Secret Data, an RSA key pair, a registered X.509 certificate, objects in
  every lifecycle state - Pre-Active, Active, Deactivated, Compromised,
  Destroyed, Destroyed Compromised - and an archived object). For each the
  full Get answer (status, reason, payload incl. key material) and the
  full Get Attributes answer (no names: every attribute) are recorded;
  kmsd is stopped and started again on the same directory and every answer
  must come back identical, TTLV item for TTLV item.
  The one attribute that legitimately changes on read is Fresh (KMIP 1.1
  3.34: true until the object is first served to a client), which the
  first Get turns false; so each Get is recorded before its Get Attributes,
  and the restart must keep Fresh false. A second full read before the
  restart is asserted identical to the first (nothing else moves on read).
- kill -9 under load: 32 threads, each with its own TLS connection, send
  single-item Creates (each with a unique Name) until kmsd is SIGKILLed
  once ~400 Success answers have arrived (a fixed number of them could all
  be answered before the kill on a fast machine). The crashed DB files
  must pass `PRAGMA integrity_check`, kmsd must start again on the
  directory, and every Create answered with Success must be there: Get
  returns 32 key bytes and Locate by its Name finds exactly it; a Create in
  flight at the kill is either wholly absent or wholly there. The number acknowledged
  before the kill is printed (pytest -rA shows it) and recorded as a
  junit property.
- kill -9 in the middle of Activate / Add Attribute / Revoke / Destroy
  (16 connections over 160 keys, and over keys they create once those are
  done, so the kill always lands in the middle): every acknowledged change
  is stored, an unacknowledged one is whole or absent, a destroyed key
  stays destroyed.
- Crash loop: kill -9 while kmsd starts and while it shuts down after
  SIGTERM, five times; the keys and the database stay intact.

Requests are raw TTLV (kmsd_harness's encoder): PyKMIP 0.10 cannot send
KMIP 1.x Archive or Add Attribute and is too slow for the load part.
It deliberately does not test power loss (that needs fsync interception);
a process crash is what it simulates.
"""
import os
import shutil
import signal
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kmsd_harness as H  # noqa: E402

# Tags (checked against PyKMIP's kmip/core/enums.py).
T_ATTRIBUTE, T_ATTR_NAME, T_ATTR_INDEX, T_ATTR_VALUE = 0x420008, 0x42000A, 0x420009, 0x42000B
T_OBJECT_TYPE, T_TEMPLATE_ATTRIBUTE = 0x420057, 0x420091
T_NAME_VALUE, T_NAME_TYPE = 0x420055, 0x420054
T_REVOCATION_REASON, T_REVOCATION_REASON_CODE = 0x420081, 0x420082
T_COMPROMISE_DATE = 0x420021
T_COMMON_TA, T_PRIVATE_TA, T_PUBLIC_TA = 0x42001F, 0x420065, 0x42006E
T_PRIVATE_UID, T_PUBLIC_UID = 0x420066, 0x42006F
T_SECRET_DATA, T_SECRET_DATA_TYPE = 0x420085, 0x420086
T_KEY_BLOCK, T_KEY_FORMAT_TYPE, T_KEY_VALUE, T_KEY_MATERIAL = 0x420040, 0x420042, 0x420045, 0x420043
T_CERTIFICATE, T_CERTIFICATE_TYPE, T_CERTIFICATE_VALUE = 0x420013, 0x42001D, 0x42001E
T_UID = 0x420094

OP_CREATE, OP_CREATE_KEY_PAIR, OP_REGISTER, OP_LOCATE = 0x01, 0x02, 0x03, 0x08
OP_GET, OP_GET_ATTRIBUTES, OP_ADD_ATTRIBUTE, OP_MODIFY_ATTRIBUTE = 0x0A, 0x0B, 0x0D, 0x0E
OP_ACTIVATE, OP_REVOKE, OP_DESTROY, OP_ARCHIVE = 0x12, 0x13, 0x14, 0x15

OBJ_SYMMETRIC_KEY, OBJ_CERTIFICATE, OBJ_SECRET_DATA = 2, 1, 7
ALG_AES, ALG_RSA = 3, 4
REASON_KEY_COMPROMISE, REASON_CESSATION = 2, 6
STATE = dict(PRE_ACTIVE=1, ACTIVE=2, DEACTIVATED=3, COMPROMISED=4, DESTROYED=5,
             DESTROYED_COMPROMISED=6)
REASON_ITEM_NOT_FOUND, REASON_OBJECT_ARCHIVED = 0x01, 0x0D


def attr(name, typ, value, index=None):
    kids = [H.item(T_ATTR_NAME, H.TEXT, name)]
    if index is not None:
        kids.append(H.item(T_ATTR_INDEX, H.INT, index))
    kids.append(H.item(T_ATTR_VALUE, typ, value))
    return H.item(T_ATTRIBUTE, H.STRUCT, kids)


def name_attr(name):
    return H.item(T_ATTRIBUTE, H.STRUCT, [
        H.item(T_ATTR_NAME, H.TEXT, "Name"),
        H.item(T_ATTR_VALUE, H.STRUCT, [H.item(T_NAME_VALUE, H.TEXT, name),
                                        H.item(T_NAME_TYPE, H.ENUM, 1)])])


def template(*attrs):
    return H.item(T_TEMPLATE_ATTRIBUTE, H.STRUCT, list(attrs))


def uid_item(uid):
    return H.item(T_UID, H.TEXT, uid)


def first(tree, tag):
    v = H.find_all(tree, tag)
    return v[0] if v else None


def aes_payload(bits, *extra):
    """The payload of a Create of an AES key of `bits` (usage: encrypt,
    decrypt) with the `extra` attributes."""
    return [H.item(T_OBJECT_TYPE, H.ENUM, OBJ_SYMMETRIC_KEY),
            template(attr("Cryptographic Algorithm", H.ENUM, ALG_AES),
                     attr("Cryptographic Length", H.INT, bits),
                     attr("Cryptographic Usage Mask", H.INT, 12), *extra)]


class Conn:
    """One mutual-TLS connection; call(op, payload) -> (status, reason, payload tree)."""

    def __init__(self, k, timeout=30.0):
        self.sock = k.raw_tls(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def call(self, op, payload=()):
        self.sock.sendall(H.request(H.batch_item(op, list(payload))))
        tree = H.decode(H.read_response(self.sock))
        assert tree and tree[0][0] == H.TAG["ResponseMessage"], tree
        items = H.find_all(tree, "BatchItem")
        assert len(items) == 1, tree
        bi = items[0]
        return first(bi, "ResultStatus"), first(bi, "ResultReason"), \
            (first(bi, "ResponsePayload") or [])

    def ok(self, op, payload=()):
        st, reason, pl = self.call(op, payload)
        assert st == H.STATUS_SUCCESS, "op 0x%02x failed: reason %s %s" % (op, reason, pl)
        return pl

    # -- operations used below
    def create_aes(self, bits, *extra):
        return first(self.ok(OP_CREATE, aes_payload(bits, *extra)), T_UID)

    def revoke(self, uid, code):
        reason = [H.item(T_REVOCATION_REASON_CODE, H.ENUM, code)]
        extra = []
        if code == REASON_KEY_COMPROMISE:
            extra = [H.item(T_COMPROMISE_DATE, H.DATE, int(time.time()) - 3600)]
        self.ok(OP_REVOKE, [uid_item(uid), H.item(T_REVOCATION_REASON, H.STRUCT, reason), *extra])

    def locate_name(self, name):
        return H.find_all(self.ok(OP_LOCATE, [name_attr(name)]), T_UID)

    def state(self, uid):
        pl = self.ok(OP_GET_ATTRIBUTES, [uid_item(uid), H.item(T_ATTR_NAME, H.TEXT, "State")])
        return first(first(pl, T_ATTRIBUTE), T_ATTR_VALUE)


def restart_clean(k):
    """k.start() on the same directory; the new run logs no error and no
    sanitizer report (a plain pytest run does not set halt_on_error)."""
    off = len(k.log_text())
    k.start()
    k.wait_log(r"\bready\b", timeout=30, start=off)
    bad = [ln for ln in k.log_text()[off:].splitlines()
           if " ERROR " in ln or "runtime error:" in ln or "AddressSanitizer" in ln]
    assert bad == [], "\n".join(bad[:10])


# ------------------------------------------------------------ population
def populate(k):
    """Create the varied set; returns {label: uid} and the named key's Name."""
    c = Conn(k)
    tag = "%d-%d" % (os.getpid(), k.port)
    o = {}
    try:
        name = "dur-named-" + tag
        o["named_preactive"] = c.create_aes(256, name_attr(name),
                                            attr("x-Custom-Text", H.TEXT, "hello durable"),
                                            attr("x-Custom-Int", H.INT, 4242))
        c.ok(OP_ADD_ATTRIBUTE, [uid_item(o["named_preactive"]),
                                attr("x-Added-Later", H.TEXT, "added")])
        c.ok(OP_ADD_ATTRIBUTE, [uid_item(o["named_preactive"]), name_attr(name + "-alias")])
        c.ok(OP_MODIFY_ATTRIBUTE, [uid_item(o["named_preactive"]),
                                   attr("x-Custom-Text", H.TEXT, "modified durable", 0)])

        o["active"] = c.create_aes(128, name_attr("dur-active-" + tag))
        c.ok(OP_ACTIVATE, [uid_item(o["active"])])

        o["deactivated"] = c.create_aes(256)
        c.ok(OP_ACTIVATE, [uid_item(o["deactivated"])])
        c.revoke(o["deactivated"], REASON_CESSATION)

        o["compromised"] = c.create_aes(256)
        c.ok(OP_ACTIVATE, [uid_item(o["compromised"])])
        c.revoke(o["compromised"], REASON_KEY_COMPROMISE)

        o["destroyed"] = c.create_aes(256, name_attr("dur-destroyed-" + tag))
        c.ok(OP_DESTROY, [uid_item(o["destroyed"])])

        o["destroyed_compromised"] = c.create_aes(192)
        c.ok(OP_ACTIVATE, [uid_item(o["destroyed_compromised"])])
        c.revoke(o["destroyed_compromised"], REASON_KEY_COMPROMISE)
        c.ok(OP_DESTROY, [uid_item(o["destroyed_compromised"])])

        o["archived"] = c.create_aes(256, name_attr("dur-archived-" + tag))
        c.ok(OP_ACTIVATE, [uid_item(o["archived"])])
        c.ok(OP_ARCHIVE, [uid_item(o["archived"])])

        pl = c.ok(OP_REGISTER, [
            H.item(T_OBJECT_TYPE, H.ENUM, OBJ_SECRET_DATA),
            template(name_attr("dur-secret-" + tag),
                     attr("Cryptographic Usage Mask", H.INT, 0),
                     attr("x-Custom-Text", H.TEXT, "a password")),
            H.item(T_SECRET_DATA, H.STRUCT, [
                H.item(T_SECRET_DATA_TYPE, H.ENUM, 1),  # Password
                H.item(T_KEY_BLOCK, H.STRUCT, [
                    H.item(T_KEY_FORMAT_TYPE, H.ENUM, 2),  # Opaque
                    H.item(T_KEY_VALUE, H.STRUCT, [
                        H.item(T_KEY_MATERIAL, H.BYTES, b"correct horse battery staple")])])])])
        o["secret"] = first(pl, T_UID)

        pl = c.ok(OP_CREATE_KEY_PAIR, [
            H.item(T_COMMON_TA, H.STRUCT, [attr("Cryptographic Algorithm", H.ENUM, ALG_RSA),
                                           attr("Cryptographic Length", H.INT, 2048)]),
            H.item(T_PRIVATE_TA, H.STRUCT, [attr("Cryptographic Usage Mask", H.INT, 1),
                                            name_attr("dur-priv-" + tag)]),
            H.item(T_PUBLIC_TA, H.STRUCT, [attr("Cryptographic Usage Mask", H.INT, 2),
                                           name_attr("dur-pub-" + tag)])])
        o["private_key"], o["public_key"] = first(pl, T_PRIVATE_UID), first(pl, T_PUBLIC_UID)
        c.ok(OP_ACTIVATE, [uid_item(o["private_key"])])

        with open(k.server_cert) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        pl = c.ok(OP_REGISTER, [
            H.item(T_OBJECT_TYPE, H.ENUM, OBJ_CERTIFICATE),
            template(name_attr("dur-cert-" + tag)),
            H.item(T_CERTIFICATE, H.STRUCT, [H.item(T_CERTIFICATE_TYPE, H.ENUM, 1),
                                             H.item(T_CERTIFICATE_VALUE, H.BYTES, der)])])
        o["certificate"] = first(pl, T_UID)

        # The states are what the population claims (so a restart that
        # reset them would be caught by the comparison, not hidden by it).
        expect = dict(named_preactive="PRE_ACTIVE", active="ACTIVE", deactivated="DEACTIVATED",
                      compromised="COMPROMISED", destroyed="DESTROYED",
                      destroyed_compromised="DESTROYED_COMPROMISED", archived="ACTIVE",
                      secret="PRE_ACTIVE", private_key="ACTIVE")
        for label, st in expect.items():
            assert c.state(o[label]) == STATE[st], label
        assert all(o.values()) and len(set(o.values())) == len(o), o
    finally:
        c.close()
    return o, name


def snapshot(k, objs):
    """{label: (Get answer, Get Attributes answer)}; Get first (it clears Fresh)."""
    c = Conn(k)
    try:
        snap = {}
        for label, uid in objs.items():
            get = c.call(OP_GET, [uid_item(uid)])
            ga = c.call(OP_GET_ATTRIBUTES, [uid_item(uid)])
            snap[label] = (get, ga)
        return snap
    finally:
        c.close()


def key_material(get_payload):
    return H.find_all(get_payload, T_KEY_MATERIAL)


def check_first_snapshot(snap):
    """The answers are the real thing, so comparing them later means something."""
    for label in ("named_preactive", "active", "deactivated", "compromised", "secret",
                  "private_key", "public_key", "certificate"):
        (st, reason, pl), _ = snap[label]
        assert st == H.STATUS_SUCCESS, (label, reason)
        if label != "certificate":
            assert key_material(pl), label
    assert len(key_material(snap["named_preactive"][0][2])[0]) == 32
    assert key_material(snap["secret"][0][2]) == [b"correct horse battery staple"]
    for label in ("destroyed", "destroyed_compromised"):
        assert snap[label][0][:2] == (H.STATUS_FAILED, REASON_ITEM_NOT_FOUND), label
    assert snap["archived"][0][:2] == (H.STATUS_FAILED, REASON_OBJECT_ARCHIVED)
    for label, (_, (st, reason, pl)) in snap.items():
        assert st == H.STATUS_SUCCESS, (label, reason)
        names = [first(a, T_ATTR_NAME) for a in H.find_all(pl, T_ATTRIBUTE)]
        assert "State" in names and "Unique Identifier" in names, (label, names)
    ga = snap["named_preactive"][1][2]
    names = [first(a, T_ATTR_NAME) for a in H.find_all(ga, T_ATTRIBUTE)]
    for n in ("x-Custom-Text", "x-Custom-Int", "x-Added-Later", "Name"):
        assert n in names, n
    assert names.count("Name") == 2


def diff(before, after):
    out = []
    for label in before:
        for i, what in enumerate(("Get", "Get Attributes")):
            if before[label][i] != after[label][i]:
                out.append("%s %s:\n  before %r\n  after  %r" %
                           (label, what, before[label][i], after[label][i]))
    return out


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_keeps_every_object(kmsd_factory, how):
    k = kmsd_factory()
    objs, name = populate(k)
    before = snapshot(k, objs)
    check_first_snapshot(before)
    # A second read before the restart is identical too (nothing but the
    # first Get changes anything).
    assert diff(before, snapshot(k, objs)) == []

    if how == "sigterm":
        k.stop()
    else:
        k.proc.send_signal(signal.SIGKILL)
        k.proc.wait(10)
        assert k.proc.returncode == -signal.SIGKILL
    restart_clean(k)

    after = snapshot(k, objs)
    problems = diff(before, after)
    assert problems == [], "\n".join(problems)
    c = Conn(k)
    try:
        assert c.locate_name(name) == [objs["named_preactive"]]
        assert c.locate_name(name + "-alias") == [objs["named_preactive"]]
    finally:
        c.close()
    k.stop()


# ------------------------------------------------------------ kill -9 under load
N_THREADS, KILL_AFTER = 32, 400


def integrity_check(db_files, workdir):
    """Copy the DB (and its WAL) as kmsd left it; integrity_check on the copy."""
    d = os.path.join(workdir, "dbcopy-%d" % time.monotonic_ns())
    os.mkdir(d)
    main = None
    for f in db_files:
        if os.path.exists(f):
            shutil.copy2(f, d)
            if main is None:
                main = os.path.join(d, os.path.basename(f))
    assert main is not None, db_files
    con = sqlite3.connect(main)
    try:
        res = con.execute("PRAGMA integrity_check").fetchall()
        n = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        fk = con.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        con.close()
    assert res == [("ok",)], res
    assert fk == [], fk[:5]
    assert n > 0
    return res


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_kill9_during_concurrent_creates(kmsd_factory, record_property, sig):
    """kill -9 (or SIGTERM: a drain with deferred commits in flight, which
    must end with exit status 0 and nothing lost) in the middle of
    concurrent Creates."""
    k = kmsd_factory()
    db = os.path.join(k.dir, k.config()["store"]["path"])
    tag = "load-%d-%d" % (os.getpid(), k.port)
    lock = threading.Lock()
    acked = []          # (uid, name) answered Success
    failed = []         # answers other than Success before the kill (must be none)
    state = {"next": 0, "sent": 0}
    reached = threading.Event()
    killed = threading.Event()
    start = threading.Barrier(N_THREADS + 1)

    def worker():
        c = None
        try:
            c = Conn(k, timeout=60)
        finally:
            start.wait(60)
        try:
            while True:  # until the kill
                with lock:
                    i = state["next"]
                    state["next"] += 1
                name = "%s-%04d" % (tag, i)
                try:
                    st, reason, pl = c.call(OP_CREATE, aes_payload(256, name_attr(name)))
                except (OSError, ConnectionError, ssl.SSLError, struct.error):
                    if killed.is_set():
                        return
                    raise
                with lock:
                    if st == H.STATUS_SUCCESS:
                        acked.append((first(pl, T_UID), name))
                        if len(acked) >= KILL_AFTER:
                            reached.set()
                    elif not killed.is_set():
                        failed.append((name, st, reason))
        finally:
            c.close()

    errors = []

    def run():
        try:
            worker()
        except BaseException as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, daemon=True) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    start.wait(60)
    t0 = time.monotonic()
    assert reached.wait(45), "only %d Creates acknowledged: %s" % (len(acked), errors[:3])
    # Set before the signal: a worker seeing its connection drop may run
    # before this thread again (a loaded machine switches threads anywhere).
    killed.set()
    os.kill(k.pid, sig)
    with lock:
        n_acked_at_kill = len(acked)
    k.proc.wait(30)
    if sig == signal.SIGTERM:
        assert k.proc.returncode == 0, (k.proc.returncode, k.log_tail())
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in k.log_text(), k.log_tail()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    n_acked = len(acked)
    msg = ("signal %d after %d Success answers (%d in total counting answers that were "
           "already on their way), %d Creates handed out, %.1fs of load" %
           (sig, n_acked_at_kill, n_acked, state["next"], elapsed))
    H.report(msg)
    record_property("creates_acknowledged_before_kill", n_acked)
    assert errors == [], errors
    assert failed == [], failed[:5]
    assert state["next"] > n_acked, "no Create was in flight at the kill: " + msg
    assert len({u for u, _ in acked}) == n_acked

    # The files exactly as the crash left them are a consistent database.
    integrity_check([db, db + "-wal"], k.workdir)

    restart_clean(k)
    # Verify with a few connections in parallel (ASan kmsd: keep it quick).
    missing = []

    def verify(part):
        c = Conn(k, timeout=60)
        try:
            for uid, name in part:
                st, reason, pl = c.call(OP_GET, [uid_item(uid)])
                km = key_material(pl) if st == H.STATUS_SUCCESS else []
                if st != H.STATUS_SUCCESS or len(km) != 1 or len(km[0]) != 32:
                    missing.append((uid, name, "Get", st, reason))
                    continue
                found = c.locate_name(name)
                if found != [uid]:
                    missing.append((uid, name, "Locate", found))
        except BaseException as e:
            missing.append(("verifier crashed", repr(e)))
        finally:
            c.close()

    parts = [acked[i::4] for i in range(4)]
    vts = [threading.Thread(target=verify, args=(p,)) for p in parts]
    for t in vts:
        t.start()
    for t in vts:
        t.join(120)
    assert missing == [], "%d of %d acknowledged Creates lost: %s" % (
        len(missing), n_acked, missing[:5])

    # Creates in flight at the kill were not acknowledged: each is either
    # wholly absent or wholly there (a key that Get serves), never half.
    acked_names = {n for _, n in acked}
    in_doubt = ["%s-%04d" % (tag, i) for i in range(state["next"])]
    in_doubt = [n for n in in_doubt if n not in acked_names]
    c = Conn(k)
    try:
        present = 0
        for name in in_doubt:
            found = c.locate_name(name)
            assert len(found) <= 1, (name, found)
            if found:
                present += 1
                st, reason, pl = c.call(OP_GET, [uid_item(found[0])])
                assert st == H.STATUS_SUCCESS, (name, reason)
                assert [len(m) for m in key_material(pl)] == [32], name
    finally:
        c.close()
    H.report("%d Creates were in flight at the kill; %d of them were stored" %
          (len(in_doubt), present))

    # Clean shutdown after recovery, and the result is consistent as well.
    k.stop()
    integrity_check([db, db + "-wal"], k.workdir)


# ------------------------------------------------- kill -9 under state changes
N_KEYS, N_UPDATERS, KILL_AFTER_UPDATES = 160, 16, 300
STEPS = ("created", "activated", "attribute added", "revoked", "destroyed")


def step_of(c, uid):
    """Which STEPS entry the stored object shows (from State and x-Seq)."""
    pl = c.ok(OP_GET_ATTRIBUTES, [uid_item(uid), H.item(T_ATTR_NAME, H.TEXT, "State"),
                                  H.item(T_ATTR_NAME, H.TEXT, "x-Seq")])
    got = {first(a, T_ATTR_NAME): first(a, T_ATTR_VALUE) for a in H.find_all(pl, T_ATTRIBUTE)}
    st, seq = got.get("State"), got.get("x-Seq")
    if st == STATE["PRE_ACTIVE"]:
        assert seq is None, (uid, got)
        return 0
    if st == STATE["ACTIVE"]:
        return 2 if seq == "seq-" + uid else 1
    assert seq == "seq-" + uid, (uid, got)
    return {STATE["DEACTIVATED"]: 3, STATE["DESTROYED"]: 4}[st]


def test_kill9_during_state_changes(kmsd_factory):
    """Acknowledged Activate / Add Attribute / Revoke / Destroy survive a
    kill -9 taken in the middle of them; an unacknowledged one is either
    applied whole or not at all; a destroyed key never comes back."""
    k = kmsd_factory()
    c = Conn(k)
    try:
        uids = [c.create_aes(256) for _ in range(N_KEYS)]
    finally:
        c.close()
    lock = threading.Lock()
    acked = {u: 0 for u in uids}     # last step answered Success
    sent = {u: 0 for u in uids}      # last step sent
    counter = {"acks": 0}
    reached, killed = threading.Event(), threading.Event()
    errors = []

    def ops(uid):
        return [
            (OP_ACTIVATE, [uid_item(uid)]),
            (OP_ADD_ATTRIBUTE, [uid_item(uid), attr("x-Seq", H.TEXT, "seq-" + uid)]),
            (OP_REVOKE, [uid_item(uid), H.item(T_REVOCATION_REASON, H.STRUCT, [
                H.item(T_REVOCATION_REASON_CODE, H.ENUM, REASON_CESSATION)])]),
            (OP_DESTROY, [uid_item(uid)]),
        ]

    def call(conn, op, payload):
        """(status, reason, payload); None once the kill cut the connection."""
        try:
            st, reason, pl = conn.call(op, payload)
        except (OSError, ConnectionError, ssl.SSLError, struct.error):
            if killed.is_set():
                return None
            raise
        if st != H.STATUS_SUCCESS:
            if killed.is_set():
                return None
            raise AssertionError("op 0x%02x: reason %s" % (op, reason))
        return st, reason, pl

    def worker(mine):
        conn = Conn(k, timeout=60)
        try:
            pending = list(mine)  # this worker's keys still to take through ops()
            while True:  # until the kill
                if not pending:
                    # The keys made up front are done (a fast machine): a
                    # new one, so that the kill still lands among changes.
                    r = call(conn, OP_CREATE, aes_payload(256))
                    if r is None:
                        return
                    uid = first(r[2], T_UID)
                    with lock:
                        acked[uid] = sent[uid] = 0
                    pending.append(uid)
                uid = pending.pop(0)
                for step, (op, payload) in enumerate(ops(uid), start=1):
                    with lock:
                        sent[uid] = step
                    if call(conn, op, payload) is None:
                        return
                    with lock:
                        acked[uid] = step
                        counter["acks"] += 1
                        if counter["acks"] >= KILL_AFTER_UPDATES:
                            reached.set()
        except BaseException as e:
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(uids[i::N_UPDATERS],), daemon=True)
               for i in range(N_UPDATERS)]
    for t in threads:
        t.start()
    assert reached.wait(45), "only %d updates acknowledged: %s" % (counter["acks"], errors[:3])
    # Set before the signal: a worker seeing its connection drop may run
    # before this thread again (a loaded machine switches threads anywhere).
    killed.set()
    os.kill(k.pid, signal.SIGKILL)
    k.proc.wait(10)
    for t in threads:
        t.join(30)
    assert errors == [], errors[:3]
    n_updates = sum(acked.values())
    assert any(sent[u] > acked[u] for u in acked), "no change was in flight at the kill"
    H.report("kill -9 after %d acknowledged state changes on %d keys" % (n_updates, len(acked)))

    db = os.path.join(k.dir, k.config()["store"]["path"])
    integrity_check([db, db + "-wal"], k.workdir)
    restart_clean(k)
    c = Conn(k)
    wrong = []
    try:
        for uid in list(acked):
            got = step_of(c, uid)
            if not acked[uid] <= got <= sent[uid]:
                wrong.append((uid, "acknowledged %s, sent %s, stored %s" % (
                    STEPS[acked[uid]], STEPS[sent[uid]], STEPS[got])))
            if got == 4:
                st, reason, _ = c.call(OP_GET, [uid_item(uid)])
                if (st, reason) != (H.STATUS_FAILED, REASON_ITEM_NOT_FOUND):
                    wrong.append((uid, "destroyed key served again"))
            elif got >= 1:
                st, _, pl = c.call(OP_GET, [uid_item(uid)])
                if st != H.STATUS_SUCCESS or [len(m) for m in key_material(pl)] != [32]:
                    wrong.append((uid, "key material not served"))
    finally:
        c.close()
    assert wrong == [], "%d keys wrong after the crash: %s" % (len(wrong), wrong[:5])
    k.stop()


# ------------------------------------------------------------ crash loop
def test_crash_loop_on_startup_and_shutdown(kmsd_factory):
    """kill -9 while kmsd is starting (store opening, WAL recovery) and while
    it is shutting down (after SIGTERM: closing checkpoint), several times
    in a row: the next start is clean and every key is intact."""
    k = kmsd_factory()
    c = Conn(k)
    try:
        keys = {}
        for i in range(40):
            uid = c.create_aes(256, name_attr("crash-loop-%d-%d" % (k.port, i)))
            st, _, pl = c.call(OP_GET, [uid_item(uid)])
            assert st == H.STATUS_SUCCESS
            keys[uid] = ("crash-loop-%d-%d" % (k.port, i), key_material(pl)[0])
    finally:
        c.close()
    db = os.path.join(k.dir, k.config()["store"]["path"])
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        # Shutting down: SIGTERM, then SIGKILL a moment later.
        k.proc.send_signal(signal.SIGTERM)
        time.sleep(delay)
        k.proc.kill()
        k.proc.wait(10)
        # Starting up: SIGKILL a moment after exec.
        with open(k.log_path, "ab") as log:
            p = subprocess.Popen([H.kmsd_bin(), "-c", k.conf_path], stdout=log,
                                 stderr=subprocess.STDOUT)
        time.sleep(delay)
        p.kill()
        p.wait(10)
        integrity_check([db, db + "-wal"], k.workdir)
        restart_clean(k)
    c = Conn(k)
    try:
        for uid, (name, material) in keys.items():
            st, reason, pl = c.call(OP_GET, [uid_item(uid)])
            assert st == H.STATUS_SUCCESS, (uid, reason)
            assert key_material(pl) == [material], uid
            assert c.locate_name(name) == [uid]
    finally:
        c.close()
    k.stop()
    integrity_check([db, db + "-wal"], k.workdir)
