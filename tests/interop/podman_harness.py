"""tests/interop/podman_harness.py: podman for the packaging tests (the
container image, and the Debian package installed into a clean Debian 12
container).

- `Podman(tmpdir)`: runs podman with a private containers.conf (runc where
  it is installed, fixed nofile/nproc ulimits: crun and raising rlimits fail
  on some hosts), names containers and volumes per test process and removes
  them in cleanup(); run() asserts success unless check=False and leaves
  podman's complaints about scheduling health checks without systemd out of
  error output (health checks run on demand with `podman healthcheck run`).
- `ensure_base(pm)`: the debian:12-slim image the Dockerfile starts from,
  imported from a cached mmdebstrap tarball ($KMSD_TEST_BASE_TAR, default
  /var/cache/kmsd-test/bookworm.tar) that is made once (about 20 s) from
  the mirrors apt uses; pytest.skip() when there is no way to get it.
- `skip_reason()`: why podman tests cannot run here, or None.

It knows nothing about kmsd; the tests assert that.
"""
import glob
import os
import re
import shutil
import subprocess
import time

import pytest

PODMAN = shutil.which("podman")
BASE = "docker.io/library/debian:12-slim"
BASE_TAR = os.environ.get("KMSD_TEST_BASE_TAR", "/var/cache/kmsd-test/bookworm.tar")
PREFIX = "kmsd-test-%d" % os.getpid()


def skip_reason():
    if PODMAN is None:
        return "podman not installed: no container engine to test with"
    if os.geteuid() != 0:
        return "needs root podman (bind mounts owned by the image's uid)"
    return None


def noise_free(stderr):
    return "".join(l for l in stderr.splitlines(True) if "systemd connection" not in l)


class Podman:
    def __init__(self, tmpdir):
        conf = os.path.join(str(tmpdir), "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
            if shutil.which("runc"):
                f.write('[engine]\nruntime = "runc"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.names = []
        self.volumes = []

    def run(self, *args, check=True, timeout=300, input=None):
        p = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout,
                           env=self.env, input=input)
        if check:
            assert p.returncode == 0, "podman %s -> %d\n%s%s" % (
                " ".join(args), p.returncode, p.stdout, noise_free(p.stderr))
        return p

    def name(self, what):
        n = "%s-%s" % (PREFIX, what)
        self.names.append(n)
        self.run("rm", "-f", "-v", n, check=False)
        return n

    def volume(self, what):
        v = "%s-%s" % (PREFIX, what)
        self.volumes.append(v)
        self.run("volume", "rm", "-f", v, check=False)
        return v

    def logs(self, name):
        p = self.run("logs", name, check=False)
        return p.stdout + noise_free(p.stderr)

    def wait_log(self, name, pattern, timeout=90, count=1):
        """Wait until the container's log (every run of it) matches regex
        `pattern` `count` times; fail early, with the log, when the
        container exits first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            log = self.logs(name)
            if len(re.findall(pattern, log)) >= count:
                return log
            st = self.run("inspect", "-f", "{{.State.Status}}", name, check=False).stdout.strip()
            if st in ("exited", "stopped"):
                raise AssertionError("container %s exited:\n%s" % (name, log))
            time.sleep(0.3)
        raise AssertionError("container %s: no %r within %ss:\n%s" % (name, pattern, timeout,
                                                                      self.logs(name)))

    def cleanup(self):
        for n in self.names:
            self.run("rm", "-f", "-v", "-t", "2", n, check=False)
        for v in self.volumes:
            self.run("volume", "rm", "-f", v, check=False)


def _apt_mirrors():
    """The Debian and security mirrors apt already uses on this host."""
    text = ""
    for f in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*"):
        try:
            with open(f) as fh:
                text += fh.read() + "\n"
        except OSError:
            pass
    uris = re.findall(r"(?:URIs:|^deb)\s+(?:\[[^\]]*\]\s+)?(https?://\S+)", text, re.M)
    main = next((u for u in uris if u.rstrip("/").endswith("/debian")), "http://deb.debian.org/debian")
    sec = next((u for u in uris if "security" in u), "http://deb.debian.org/debian-security")
    return main, sec


def ensure_base(pm):
    if pm.run("image", "exists", BASE, check=False).returncode == 0:
        return
    if not os.path.exists(BASE_TAR):
        if not shutil.which("mmdebstrap"):
            pytest.skip("no %s image and no mmdebstrap to make one" % BASE)
        main, sec = _apt_mirrors()
        os.makedirs(os.path.dirname(BASE_TAR), exist_ok=True)
        tmp = BASE_TAR + ".tmp"
        p = subprocess.run(["mmdebstrap", "--variant=minbase", "--mode=root", "bookworm", tmp,
                            "deb %s bookworm main" % main, "deb %s bookworm-security main" % sec],
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, "mmdebstrap failed:\n%s" % p.stderr[-3000:]
        os.replace(tmp, BASE_TAR)
    pm.run("import", BASE_TAR, BASE, timeout=600)
