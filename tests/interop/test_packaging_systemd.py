"""tests/interop/test_packaging_systemd.py: the systemd unit
packaging/systemd/kmsd.service.

- `systemd-analyze security --offline=true` rates it at or below 2.0;
- `systemd-analyze verify` finds no unknown or malformed directive (it
  complains only that /usr/sbin/kmsd and the man pages are not installed
  here, which is not the unit's fault);
- kmsd starts, serves a PyKMIP client and stops cleanly under the unit's
  restrictions that work without systemd: the same system-call allow list
  (the unit's SystemCallFilter= lines expanded with `systemd-analyze
  syscall-filter`, refused calls failing with EPERM), its address families,
  MemoryDenyWriteExecute's mmap/mprotect rules, an empty capability
  bounding set, no_new_privs and an unprivileged user (setpriv and
  python3-seccomp). A control run without prlimit64 in the list shows the
  filter is really applied. Not emulated: the mount namespace options
  (ProtectSystem=strict and friends, which need systemd as PID 1, absent
  here) and the kernel-tunable / clock / hostname protections.
Each part skips with a reason when its tool is missing.
"""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import kmsd_harness

UNIT = os.path.join(kmsd_harness.REPO, "packaging", "systemd", "kmsd.service")
ANALYZE = shutil.which("systemd-analyze")
NOBODY = 65534

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


@needs_analyze
def test_security_exposure_at_most_2():
    p = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", UNIT],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for kmsd\.service: ([0-9.]+) (\w+)", p.stdout + p.stderr)
    assert m, p.stdout + p.stderr
    assert float(m.group(1)) <= 2.0, "exposure %s %s:\n%s" % (m.group(1), m.group(2), p.stdout)


@needs_analyze
def test_verify_no_bad_directives():
    p = subprocess.run([ANALYZE, "verify", UNIT], capture_output=True, text=True, timeout=120)
    bad = [l for l in (p.stdout + p.stderr).splitlines()
           if re.search(r"Unknown|Failed to parse|Invalid|ignoring|not valid", l, re.I)]
    assert bad == [], "\n".join(bad)


# ------------------------------------------------------------ the filter
def _unit_filter_lines():
    with open(UNIT) as f:
        return [l.split("=", 1)[1].strip() for l in f if l.startswith("SystemCallFilter=")]


def _expand(group, seen=None):
    """The system calls of a systemd group (or one call), recursively."""
    seen = set() if seen is None else seen
    if not group.startswith("@"):
        return {group}
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run([ANALYZE, "syscall-filter", "--no-pager", group], capture_output=True,
                         text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        calls |= _expand(w, seen)
    return calls


def unit_allow_list():
    """SystemCallFilter= lines in order: the first (an allow list) sets the
    list, a later "~..." line removes, a later plain line adds."""
    allowed = set()
    for i, v in enumerate(_unit_filter_lines()):
        neg = v.startswith("~")
        names = set()
        for g in v.lstrip("~").split():
            names |= _expand(g)
        if i == 0:
            assert not neg, "the unit's first SystemCallFilter= is expected to be an allow list"
        allowed = allowed - names if neg else allowed | names
    return allowed


LAUNCHER = r'''
import errno, os, sys, seccomp
allowed = open(sys.argv[1]).read().split()
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
special = {"socket", "mmap", "mprotect", "pkey_mprotect"}
for name in allowed:
    if name in special:
        continue
    try:
        f.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError, OSError):
        pass  # not a system call of this architecture
# RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
if "socket" in allowed:
    for fam in (1, 2, 10):
        f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, fam))
# MemoryDenyWriteExecute=yes: no writable+executable mapping, no mprotect to executable
W, X = 2, 4
for v in (0, W, X):
    f.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, W | X, v))
for call in ("mprotect", "pkey_mprotect"):
    f.add_rule(seccomp.ALLOW, call, seccomp.Arg(2, seccomp.MASKED_EQ, X, 0))
f.load()
os.execv(sys.argv[2], sys.argv[2:])
'''


def _builds():
    """The kmsd builds to run confined: $KMSD_BUILD (the ASan build in make
    test) and the release build in build/ when it exists."""
    out = [kmsd_harness.build_dir()]
    rel = os.path.join(kmsd_harness.REPO, "build")
    if os.path.exists(os.path.join(rel, "kmsd")) and os.path.realpath(rel) != os.path.realpath(out[0]):
        out.append(rel)
    return out


@pytest.fixture
def confined(monkeypatch):
    """Returns make(build_dir, drop=()) -> a kmsd_harness.Kmsd whose kmsd runs
    confined (minus the system calls in `drop`), in a directory owned by
    `nobody`."""
    if ANALYZE is None:
        pytest.skip("systemd-analyze not installed (needed to expand the unit's filter)")
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run kmsd as an unprivileged user")
    if subprocess.run(["/usr/bin/python3", "-c", "import seccomp"]).returncode != 0:
        pytest.skip("python3-seccomp not installed")
    allowed = unit_allow_list()
    assert {"read", "write", "epoll_wait", "prlimit64"} <= allowed
    assert "setuid" not in allowed and "reboot" not in allowed
    # Everything `nobody` runs or reads lives in one world-readable directory
    # (pytest's tmp_path is private to root).
    base = tempfile.mkdtemp(prefix="kmsd-confined-")
    os.chmod(base, 0o755)
    launcher = os.path.join(base, "launcher.py")
    with open(launcher, "w") as f:
        f.write(LAUNCHER)
    made = []

    def make(build, drop=()):
        n = len(made)
        lst = os.path.join(base, "allow%d" % n)
        with open(lst, "w") as f:
            f.write("\n".join(sorted(allowed - set(drop))))
        wrapper = os.path.join(base, "kmsd-confined%d" % n)
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec setpriv --reuid=%d --regid=%d --clear-groups --bounding-set=-all "
                    "--inh-caps=-all --no-new-privs /usr/bin/python3 %s %s %s \"$@\"\n"
                    % (NOBODY, NOBODY, launcher, lst, os.path.join(build, "kmsd")))
        os.chmod(wrapper, 0o755)
        d = os.path.join(base, "k%d" % n)
        os.mkdir(d)
        monkeypatch.setattr(kmsd_harness, "build_dir", lambda: build)
        k = kmsd_harness.Kmsd(d, start=False)
        subprocess.run(["chown", "-R", "%d:%d" % (NOBODY, NOBODY), d], check=True)
        monkeypatch.setattr(kmsd_harness, "kmsd_bin", lambda: str(wrapper))
        made.append(k)
        return k

    # ASan's leak check stops the world with ptrace, which the filter
    # refuses; leaks are checked by every other test.
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    yield make
    for k in made:
        k.kill()
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("build", _builds(), ids=os.path.basename)
def test_kmsd_runs_under_the_unit_filter(confined, build):
    k = confined(build)
    k.start()
    from kmip import enums
    c = k.pykmip_client()
    try:
        uid = c.create(enums.CryptographicAlgorithm.AES, 256)
        assert len(c.get(uid).value) == 32
    finally:
        c.close()
    with open("/proc/%d/status" % k.pid) as f:
        status = f.read()
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    assert re.search(r"^CapBnd:\s+0+$", status, re.M) and re.search(r"^CapEff:\s+0+$", status, re.M)
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^Uid:\s+%d\s" % NOBODY, status, re.M)
    k.stop()


def test_filter_is_applied(confined):
    # Without prlimit64 kmsd's setrlimit(RLIMIT_CORE) (or, in the ASan
    # build, the sanitizer's own getrlimit) fails and it refuses to start:
    # the launcher really enforces the list.
    k = confined(_builds()[-1], drop=("prlimit64", "setrlimit"))
    with pytest.raises(AssertionError, match=r"harden: setrlimit|getrlimit\(\) failed"):
        k.start(timeout=30)
