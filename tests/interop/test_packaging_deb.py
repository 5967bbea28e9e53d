"""tests/interop/test_packaging_deb.py: the Debian package from `make deb`.

Built once per session (2 jobs, -O0, no debug-symbol package: 35 s on
the 2-core machine under a load of 10, 50 s with -O2), then:
- contents: programs, unit, man pages, bash completion, sample
  configuration, DEP-5 copyright; Depends carries the shared libraries
  and adduser;
- maintainer scripts: the unit is stopped on remove and restarted after an
  upgrade (only when enabled or running: deb-systemd-invoke), never enabled
  or started on a fresh install; the home directory is made before the
  user; purge removes only empty directories and says what it keeps;
- lintian reports no errors and no warnings;
- installed with apt into a clean Debian 12 container (podman; skipped
  without it): user, directories and modes, the programs run, `kmsctl init`
  as the kmsd user sets up /var/lib/kmsd, reinstalling (the upgrade path)
  keeps everything, the first run of docs/operations.md section 2 (a
  one-line /etc/kmsd/kmsd.yaml, state found in /var/lib/kmsd) gives a
  healthy kmsd, purge of an empty state directory removes it silently and
  purge of a populated one keeps it and lists what is in it.
What could not be checked here: the systemd branches of the scripts (no
systemd as PID 1 in the container); test_packaging_systemd.py checks the
unit itself.
"""
import io
import os
import re
import shutil
import subprocess
import tarfile

import pytest

import kmsd_harness
import podman_harness

REPO = kmsd_harness.REPO


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    # noopt: -O0 compiles in two thirds of the time; what is tested here is
    # the packaging, not the optimiser (make deb itself builds with -O2).
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=2 noautodbgsym noopt")
    p = subprocess.run(["nice", "make", "--no-print-directory", "deb"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, "make deb failed:\n%s%s" % (p.stdout[-4000:], p.stderr[-4000:])
    version = subprocess.run(["dpkg-parsechangelog", "-l", "packaging/debian/changelog", "-S",
                              "Version"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    path = os.path.join(REPO, "build", "kmsd_%s_%s.deb" % (version, arch))
    assert os.path.exists(path), path
    ctl = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "-e", path, str(ctl)], check=True)
    return path, ctl


def test_contents(deb):
    path, _ = deb
    listing = subprocess.run(["dpkg-deb", "-c", path], capture_output=True, text=True,
                             check=True).stdout
    files = {l.split()[-1].lstrip(".") for l in listing.splitlines()}
    for f in ("/usr/sbin/kmsd", "/usr/bin/kmsctl", "/lib/systemd/system/kmsd.service",
              "/usr/share/man/man8/kmsd.8.gz", "/usr/share/man/man8/kmsctl.8.gz",
              "/usr/share/man/man5/kmsd.yaml.5.gz", "/usr/share/kmsd/kmsd.yaml.sample",
              "/usr/share/bash-completion/completions/kmsctl", "/usr/share/doc/kmsd/copyright"):
        assert f in files, f
    info = subprocess.run(["dpkg-deb", "-f", path, "Depends", "Maintainer"], capture_output=True,
                          text=True, check=True).stdout
    for dep in ("libssl3", "libsqlite3-0", "libuv1", "libyaml-0-2", "libargon2-1", "adduser"):
        assert dep in info, info
    assert "localhost" not in info
    # DEP-5 copyright: machine-readable header and a Files paragraph.
    cp = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(cp)) as t:
        text = t.extractfile("./usr/share/doc/kmsd/copyright").read().decode()
        unit = t.extractfile("./lib/systemd/system/kmsd.service").read().decode()
    assert text.startswith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
    assert re.search(r"^Files: \*$", text, re.M) and re.search(r"^License: ", text, re.M)
    with open(os.path.join(REPO, "packaging/systemd/kmsd.service")) as f:
        assert unit == f.read()


def test_dockerfile_build_stage_has_the_build_depends():
    """The container image is built from the same dependencies as the
    package: every Build-Depends of debian/control is installed by the
    Dockerfile's build stage (a new library added to one only fails here,
    without a container engine)."""
    with open(os.path.join(REPO, "packaging/debian/control")) as f:
        control = f.read()
    bd = re.search(r"^Build-Depends:(.*?)^\S", control, re.S | re.M).group(1)
    wanted = {re.sub(r"\s*\(.*\)", "", d).strip() for d in bd.replace("\n", " ").split(",")}
    wanted -= {"", "debhelper-compat"}
    with open(os.path.join(REPO, "packaging/docker/Dockerfile")) as f:
        build_stage = f.read().split("\nFROM ")[1]
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", build_stage.split("apt-get install", 1)[1]
                               .split("&&")[0]))
    assert wanted <= installed, "not in the Dockerfile's build stage: %s" % sorted(wanted - installed)


def test_maintainer_scripts(deb):
    _, ctl = deb
    prerm = (ctl / "prerm").read_text()
    postinst = (ctl / "postinst").read_text()
    postrm = (ctl / "postrm").read_text()
    # Stop on remove.
    assert re.search(r'"\$1" = remove .*\n\s*deb-systemd-invoke stop .kmsd\.service', prerm), prerm
    # Restart after an upgrade ($2 = the old version), start attempt on a
    # fresh install (refused by deb-systemd-invoke while disabled), never
    # an enable on a fresh install.
    assert re.search(r'if \[ -n "\$2" \]; then\s*_dh_action=restart', postinst), postinst
    assert "deb-systemd-invoke $_dh_action 'kmsd.service'" in postinst
    assert "deb-systemd-helper enable" not in postinst.split("was-enabled")[0]
    # The home directory before the user.
    assert postinst.index("install -d -m 0700 /var/lib/kmsd") < postinst.index("adduser --system")
    assert "--no-create-home" in postinst
    # Purge: only empty directories go, and the message lists what stays.
    assert "rmdir" in postrm and "is not empty and was kept" in postrm
    for s in ("postinst", "prerm", "postrm"):
        subprocess.run(["sh", "-n", str(ctl / s)], check=True)


def test_lintian_clean(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian not installed")
    path, _ = deb
    p = subprocess.run(["lintian", "--no-tag-display-limit", path], capture_output=True,
                       text=True, timeout=600)
    tags = [l for l in p.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    assert tags == [], "\n".join(tags)


@pytest.fixture(scope="module")
def pm(tmp_path_factory):
    reason = podman_harness.skip_reason()
    if reason:
        pytest.skip(reason)
    p = podman_harness.Podman(tmp_path_factory.mktemp("podman"))
    podman_harness.ensure_base(p)
    yield p
    p.cleanup()


INSTALL_SCRIPT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends /deb/kmsd.deb >/dev/null
echo "== installed"
getent passwd kmsd | cut -d: -f6,7
stat -c '%n %U:%G %a' /var/lib/kmsd /etc/kmsd
kmsd --version
kmsctl --version
test -z "$(ls -A /var/lib/kmsd)" && echo "home empty"
echo "== purge empty"
dpkg --purge kmsd 2>&1
test -e /var/lib/kmsd || echo "state dir removed"
test -e /etc/kmsd || echo "etc removed"
echo "== reinstall, init, upgrade"
dpkg -i /deb/kmsd.deb >/dev/null 2>&1
runuser -u kmsd -- kmsctl init --dir /var/lib/kmsd --host kms.deb.test >/dev/null 2>&1
stat -c '%n %U %a' /var/lib/kmsd/master.key
dpkg -i /deb/kmsd.deb >/dev/null 2>&1
test -e /var/lib/kmsd/kms.db && echo "kept across upgrade"
runuser -u kmsd -- kmsd --check-config /var/lib/kmsd/kmsd.yaml >/dev/null 2>&1 && echo "config ok"
echo "== first run as in operations.md"
ln -s /var/lib/kmsd/pki /etc/kmsd/pki
printf 'listen: ["127.0.0.1:%s"]\n' "$PORT" | install -m 0640 -o root -g kmsd /dev/stdin /etc/kmsd/kmsd.yaml
runuser -u kmsd -- kmsd --check-config /etc/kmsd/kmsd.yaml >/dev/null 2>&1 && echo "etc config ok"
runuser -u kmsd -- kmsd -c /etc/kmsd/kmsd.yaml >/tmp/kmsd.log 2>&1 &
for i in $(seq 100); do kmsctl status >/dev/null 2>&1 && break; sleep 0.2; done
kmsctl status | grep -E '^(health|hsm|audit) ' || cat /tmp/kmsd.log
kmsctl ca export | head -n 1
ls /var/lib/kmsd | tr '\n' ' '; echo
kill $!; wait
echo "== purge populated"
dpkg --purge kmsd 2>&1
ls /var/lib/kmsd | tr '\n' ' '; echo
"""


def test_install_and_purge_in_clean_debian(deb, pm):
    path, _ = deb
    c = pm.name("deb")
    p = pm.run("run", "--rm", "--name", c, "--network=host", "-v", "%s:/deb/kmsd.deb:ro" % path,
               "-e", "PORT=%d" % kmsd_harness.free_port(),
               podman_harness.BASE, "sh", "-c", INSTALL_SCRIPT, timeout=900, check=False)
    out = p.stdout
    assert p.returncode == 0, out + p.stderr
    inst = out.split("== installed")[1].split("== purge empty")[0]
    assert "/var/lib/kmsd:/usr/sbin/nologin" in inst
    assert "/var/lib/kmsd kmsd:kmsd 700" in inst
    assert "/etc/kmsd root:kmsd 750" in inst
    assert "kmsd 0.1.0" in inst and "kmsctl 0.1.0" in inst and "home empty" in inst
    purge_empty = out.split("== purge empty")[1].split("== reinstall")[0]
    assert "state dir removed" in purge_empty and "etc removed" in purge_empty
    assert "kept" not in purge_empty, purge_empty
    upgrade = out.split("== reinstall, init, upgrade")[1].split("== first run")[0]
    assert "/var/lib/kmsd/master.key kmsd 600" in upgrade
    assert "kept across upgrade" in upgrade and "config ok" in upgrade
    # operations.md section 2: /etc/kmsd/kmsd.yaml names only the listener;
    # state and admin socket are found in /var/lib/kmsd by default.
    first = out.split("== first run as in operations.md")[1].split("== purge populated")[0]
    assert "etc config ok" in first
    assert re.search(r"^health\s+ok$", first, re.M), first
    assert re.search(r"^hsm\s+file /var/lib/kmsd/master.key$", first, re.M), first
    assert "-----BEGIN CERTIFICATE-----" in first
    for f in ("audit.log", "admin.sock", "kms.db"):
        assert f in first.split("-----BEGIN CERTIFICATE-----")[1], first
    purge_full = out.split("== purge populated")[1]
    assert "kmsd: /var/lib/kmsd is not empty and was kept:" in purge_full
    assert "kms.db" in purge_full and "master.key" in purge_full
    assert "kmsd: /etc/kmsd is not empty and was kept: kmsd.yaml pki" in purge_full
