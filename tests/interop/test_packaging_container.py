"""tests/interop/test_packaging_container.py: the container image, built with
podman from packaging/docker/Dockerfile once per test session and run the
ways docs/operations.md (Container) tells an operator to run it:

- the image: numeric user 5696, OCI labels, HEALTHCHECK kept (--format
  docker), stripped binaries, no apt lists;
- commands other than the default pass through (`kmsd --version`) and make
  nothing in the volume;
- development mode: the default command on an empty volume makes a setup
  whose certificate carries KMSD_HOST, listens on KMSD_LISTEN, logs at
  KMSD_LOG_LEVEL, runs with a read-only root and no capabilities, keeps every
  piece of state in the volume, and a PyKMIP client on the host creates and
  gets a key through the published port;
- production mode: a configuration and PKI of our own mounted read-only, a
  named volume seeded with `kmsctl hsm init`, read-only root, all
  capabilities dropped; a key survives `podman restart`; the audit chain
  in the volume verifies; a volume seeded with `kmsctl init --dir
  /var/lib/kmsd` starts too, and `kmsctl` inside finds its configuration;
- refusals: an unreadable /etc/kmsd, an unreadable server key, an init
  directory whose relative state paths point into the read-only mount, and
  an unseeded volume each stop the container with exit 1 and a message
  naming the uid/gid or the seeding command; nothing falls back to a
  development setup;
- compose-cluster.yaml: three containers with its options formed into a
  cluster with the kmsctl commands in its header (plain podman: see
  _compose_node_args), a key made through one node served by another,
  cluster verify exit 0.

Skips (one line) without podman, without root (bind mounts are chowned to
uid 5696), or without a debian:12-slim image and a way to make one
(mmdebstrap); podman_harness.py makes the base image from a cached
mmdebstrap tarball. Building the image reuses podman's layer cache: about
60 s cold, 40 s after a source change, a few seconds when nothing changed.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

import kmsd_harness
import podman_harness

REPO = kmsd_harness.REPO
IMAGE = "localhost/kmsd-test:latest"
UID = 5696

pytestmark = pytest.mark.skipif(podman_harness.skip_reason() is not None,
                                reason=str(podman_harness.skip_reason()))


# Flags every run gets: health checks are run on demand (no systemd here to
# schedule them), and the container has no capabilities and cannot gain any.
HARDENED = ["--health-interval", "disable", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]
READY = r"INFO kmsd: ready"


@pytest.fixture(scope="module")
def pm(tmp_path_factory):
    p = podman_harness.Podman(tmp_path_factory.mktemp("podman"))
    yield p
    p.cleanup()


@pytest.fixture(scope="module")
def image(pm):
    podman_harness.ensure_base(pm)
    old = pm.run("image", "inspect", "-f", "{{.Id}}", IMAGE, check=False).stdout.strip()
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "unknown"
    t0 = time.time()
    pm.run("build", "--format", "docker", "--network=host", "-f", "packaging/docker/Dockerfile",
           "--build-arg", "REVISION=" + rev, "--build-arg", "CREATED=2026-01-01T00:00:00Z",
           "-t", IMAGE, REPO, timeout=1800)
    kmsd_harness.report("container image built in %.1f s" % (time.time() - t0))
    new = pm.run("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()
    if old and old != new:  # the previous build of this tag, now untagged
        pm.run("rmi", old, check=False)
    # Each source change leaves an untagged build-stage image (~0.5 GB).
    pm.run("image", "prune", "-f", "--filter", "label=kmsd.stage=build", check=False)
    return IMAGE


def _host_dir(path, owner=UID, mode=0o700):
    os.makedirs(path, exist_ok=True)
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    return path


def _pykmip(port, pki_dir):
    from kmip.pie.client import ProxyKmipClient
    c = ProxyKmipClient(hostname="127.0.0.1", port=port, cert=os.path.join(pki_dir, "client.crt"),
                        key=os.path.join(pki_dir, "client.key"), ca=os.path.join(pki_dir, "ca.crt"))
    c.open()
    return c


def _create_key(port, pki_dir):
    from kmip import enums
    c = _pykmip(port, pki_dir)
    try:
        uid = c.create(enums.CryptographicAlgorithm.AES, 256)
        return uid, bytes(c.get(uid).value)
    finally:
        c.close()


def _get_key(port, pki_dir, uid):
    c = _pykmip(port, pki_dir)
    try:
        return bytes(c.get(uid).value)
    finally:
        c.close()


def _byo_config(tmp_path, name="etc"):
    """/etc/kmsd as an operator brings it: a CA and server certificate of
    their own (made here with the host's kmsctl init in a scratch
    directory), a kmsd.yaml that names only the listener and the PKI (state
    defaults to the volume), group 5696, directories 0750, files 0640."""
    scratch = tmp_path / (name + "-ca")
    subprocess.run([kmsd_harness.kmsctl_bin(), "init", "--dir", str(scratch), "--host",
                    "kms.prod.test"], check=True, capture_output=True, timeout=120)
    etc = tmp_path / name
    (etc / "pki").mkdir(parents=True)
    for f in ("ca.crt", "server.crt", "server.key", "client.crt"):
        shutil.copy(scratch / "pki" / f, etc / "pki" / f)
    (etc / "kmsd.yaml").write_text(
        "listen: [\"[::]:5696\"]\n"
        "tls:\n  cert: pki/server.crt\n  key: pki/server.key\n  client_ca: pki/ca.crt\n")
    for p in [etc, etc / "pki"]:
        os.chown(p, 0, UID)
        os.chmod(p, 0o750)
    for p in list((etc / "pki").iterdir()) + [etc / "kmsd.yaml"]:
        os.chown(p, 0, UID)
        os.chmod(p, 0o640)
    return etc, scratch / "pki"


# ------------------------------------------------------------------ tests
def test_image_metadata(pm, image, tmp_path):
    cfg = pm.run("image", "inspect", "-f",
                 "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|"
                 "{{json .Config.Volumes}}", image).stdout.strip().split("|")
    assert cfg[0] == "5696:5696"
    assert cfg[1] == '["/usr/bin/tini","--","/usr/local/bin/kmsd-entrypoint"]'
    assert cfg[2] == '["kmsd"]'
    assert "/var/lib/kmsd" in cfg[3]
    labels = pm.run("image", "inspect", "-f", "{{json .Labels}}", image).stdout
    for k in ("title", "description", "version", "revision", "created", "licenses", "vendor"):
        assert '"org.opencontainers.image.%s"' % k in labels, labels
    assert '"org.opencontainers.image.version":"0.1.0"' in labels
    hc = pm.run("image", "inspect", "-f", "{{json .HealthCheck}}", image).stdout
    assert "kmsd-entrypoint" in hc and "health" in hc, "HEALTHCHECK lost: " + hc
    # Stripped binaries, no apt lists.
    c = pm.name("meta")
    pm.run("create", "--name", c, image)
    for path in ("/usr/sbin/kmsd", "/usr/bin/kmsctl"):
        out = str(tmp_path / os.path.basename(path))
        pm.run("cp", "%s:%s" % (c, path), out)
        sections = subprocess.run(["readelf", "-S", "-W", out], capture_output=True,
                                  text=True).stdout
        assert ".text" in sections
        assert ".symtab" not in sections and ".debug_info" not in sections, path
    p = pm.run("run", "--rm", *HARDENED, "--entrypoint", "sh", image, "-c",
               "ls -A /var/lib/apt/lists | grep -v '^partial$' | wc -l; "
               "stat -c %u:%g:%a /var/lib/kmsd; test -e /etc/kmsd && echo etc-exists; "
               "readlink /usr/local/bin/kmsctl")
    assert p.stdout.split() == ["0", "5696:5696:700", "kmsd-entrypoint"], p.stdout


def test_commands_pass_through(pm, image):
    v = pm.volume("pass")
    p = pm.run("run", "--rm", *HARDENED, "-v", v + ":/var/lib/kmsd", image, "kmsd", "--version")
    assert p.stdout.strip() == "kmsd 0.1.0"
    p = pm.run("run", "--rm", *HARDENED, "-v", v + ":/var/lib/kmsd", image, "kmsctl", "--help")
    assert "usage: kmsctl" in p.stdout
    # Nothing was made in the volume: only the default command sets up.
    p = pm.run("run", "--rm", *HARDENED, "-v", v + ":/var/lib/kmsd", image, "ls", "-A",
               "/var/lib/kmsd")
    assert p.stdout.strip() == ""


def test_development_mode(pm, image, tmp_path):
    data = _host_dir(str(tmp_path / "data"))
    port = kmsd_harness.free_port()
    c = pm.name("dev")
    pm.run("run", "-d", "--name", c, *HARDENED, "--read-only",
           "-e", "KMSD_HOST=kms.dev.test,10.9.8.7", "-e", "KMSD_LISTEN=[::]:6000",
           "-e", "KMSD_LOG_LEVEL=debug",
           "-p", "127.0.0.1:%d:6000" % port, "-v", data + ":/var/lib/kmsd", image)
    log = pm.wait_log(c, READY)
    assert "DEVELOPMENT setup" in log
    assert "listening on [::]:6000" in log
    # The effective configuration in the container's environment.
    eff = pm.run("exec", c, "kmsd", "--check-config", "/var/lib/kmsd/kmsd.yaml").stdout
    assert re.search(r'^  level: "debug"$', eff, re.M), eff
    san = subprocess.run(["openssl", "x509", "-in", os.path.join(data, "pki", "server.crt"),
                          "-noout", "-ext", "subjectAltName"], capture_output=True, text=True).stdout
    assert "DNS:kms.dev.test" in san and "IP Address:10.9.8.7" in san, san

    uid, key = _create_key(port, os.path.join(data, "pki"))
    assert len(key) == 32

    # Every piece of state is in the volume.
    for f in ("kmsd.yaml", "kms.db", "master.key", "audit.log", "admin.sock"):
        assert os.path.exists(os.path.join(data, f)), f
    assert os.stat(os.path.join(data, "master.key")).st_uid == UID
    # kmsctl inside finds the volume's configuration by itself; the health
    # check says healthy.
    st = pm.run("exec", c, "kmsctl", "status").stdout
    assert re.search(r"^health\s+ok$", st, re.M), st
    assert pm.run("healthcheck", "run", c, check=False).returncode == 0
    pm.run("stop", "-t", "20", c)
    assert pm.run("inspect", "-f", "{{.State.ExitCode}}", c).stdout.strip() == "0"


def test_production_mode(pm, image, tmp_path):
    etc, client_pki = _byo_config(tmp_path)
    shutil.copy(client_pki / "client.key", etc.parent / "client.key")
    v = pm.volume("prod")
    mounts = ["-v", v + ":/var/lib/kmsd", "-v", "%s:/etc/kmsd:ro" % etc]

    # A fresh volume: the default command stops and says how to seed it.
    p = pm.run("run", "--rm", *HARDENED, "--read-only", *mounts, image, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "has not been seeded" in p.stderr
    assert "kmsctl init --dir /var/lib/kmsd" in p.stderr and "kmsctl hsm init" in p.stderr

    # Seed: the master key only (the configuration and PKI are ours).
    p = pm.run("run", "--rm", *HARDENED, "--read-only", *mounts, image, "kmsctl", "hsm", "init")
    assert "/var/lib/kmsd/master.key" in p.stdout

    port = kmsd_harness.free_port()
    c = pm.name("prod")
    pm.run("run", "-d", "--name", c, *HARDENED, "--read-only", "-p", "127.0.0.1:%d:5696" % port,
           *mounts, image)
    log = pm.wait_log(c, READY)
    assert "starting kmsd with /etc/kmsd/kmsd.yaml" in log
    assert "DEVELOPMENT" not in log
    pm.run("exec", c, "kmsctl", "tenant", "add", "prod")
    pm.run("exec", c, "kmsctl", "client", "add", "--tenant", "prod", "--cert",
           "/etc/kmsd/pki/client.crt")
    pki = str(tmp_path / "client-pki")
    os.makedirs(pki)
    shutil.copy(etc / "pki" / "ca.crt", pki)
    shutil.copy(etc / "pki" / "client.crt", pki)
    shutil.copy(etc.parent / "client.key", os.path.join(pki, "client.key"))
    uid, key = _create_key(port, pki)

    pm.run("restart", "-t", "20", c, timeout=120)
    log = pm.wait_log(c, READY, count=2)
    assert "INFO kmsd: stopped" in log  # the first run shut down cleanly
    assert _get_key(port, pki, uid) == key
    assert pm.run("healthcheck", "run", c, check=False).returncode == 0
    ls = pm.run("exec", c, "ls", "-A", "/var/lib/kmsd").stdout.split()
    for f in ("kms.db", "master.key", "audit.log", "admin.sock"):
        assert f in ls, ls
    au = pm.run("exec", c, "kmsctl", "audit", "verify", "/var/lib/kmsd/audit.log").stdout
    assert au.startswith("ok:"), au


def test_seeded_with_init(pm, image, tmp_path):
    v = pm.volume("seed")
    p = pm.run("run", "--rm", *HARDENED, "--read-only", "-v", v + ":/var/lib/kmsd", image,
               "kmsctl", "init", "--dir", "/var/lib/kmsd", "--host", "kms.seed.test")
    assert "kmsd is set up in /var/lib/kmsd" in p.stdout
    c = pm.name("seed")
    pm.run("run", "-d", "--name", c, *HARDENED, "--read-only", "-v", v + ":/var/lib/kmsd", image)
    log = pm.wait_log(c, READY)
    assert "starting kmsd with /var/lib/kmsd/kmsd.yaml" in log and "DEVELOPMENT" not in log
    st = pm.run("exec", c, "kmsctl", "--json", "status").stdout
    assert '"health":"ok"' in st


def _refused(pm, image, args, *want):
    v = pm.volume("refuse")
    p = pm.run("run", "--rm", *HARDENED, "--read-only", "-v", v + ":/var/lib/kmsd", *args,
               image, check=False, timeout=120)
    assert p.returncode == 1, "expected exit 1, got %d:\n%s%s" % (p.returncode, p.stdout, p.stderr)
    for w in want:
        assert w in p.stderr, "%r not in:\n%s" % (w, p.stderr)
    assert "ready" not in p.stderr and "DEVELOPMENT" not in p.stderr
    # No development setup was made behind the operator's back.
    left = pm.run("run", "--rm", *HARDENED, "-v", v + ":/var/lib/kmsd", image, "ls", "-A",
                  "/var/lib/kmsd").stdout.strip()
    assert left == "", left
    return p.stderr


def test_unreadable_config_exits_loudly(pm, image, tmp_path):
    # `kmsctl init` run by root on the host: /etc/kmsd 0700 root.
    etc = tmp_path / "init-etc"
    subprocess.run([kmsd_harness.kmsctl_bin(), "init", "--dir", str(etc)], check=True,
                   capture_output=True, timeout=120)
    _refused(pm, image, ["-v", "%s:/etc/kmsd:ro" % etc],
             "/etc/kmsd is mounted but this container's user (uid 5696, gid 5696) cannot read it",
             "owner 0:0, mode 700", "never falls back")


def test_unreadable_server_key_exits_loudly(pm, image, tmp_path):
    etc, _ = _byo_config(tmp_path)
    os.chmod(etc / "pki" / "server.key", 0o600)
    _refused(pm, image, ["-v", "%s:/etc/kmsd:ro" % etc],
             "tls.key /etc/kmsd/pki/server.key is not readable by this container's user "
             "(uid 5696, gid 5696; owner 0:5696, mode 600)")


def test_state_in_readonly_config_dir_exits_loudly(pm, image, tmp_path):
    # An init directory made readable for the container and mounted
    # read-only: its relative state paths point into /etc/kmsd.
    etc = tmp_path / "init-etc"
    subprocess.run([kmsd_harness.kmsctl_bin(), "init", "--dir", str(etc)], check=True,
                   capture_output=True, timeout=120)
    subprocess.run(["chgrp", "-R", str(UID), str(etc)], check=True)
    subprocess.run(["chmod", "-R", "g+rX", str(etc)], check=True)
    _refused(pm, image, ["-v", "%s:/etc/kmsd:ro" % etc],
             "store.path /etc/kmsd/kms.db: kmsd cannot create it: relative paths in "
             "/etc/kmsd/kmsd.yaml resolve into /etc/kmsd",
             "all state belongs in the volume /var/lib/kmsd")


def test_unwritable_volume_exits_loudly(pm, image, tmp_path):
    data = _host_dir(str(tmp_path / "rootdata"), owner=0)
    p = pm.run("run", "--rm", *HARDENED, "-v", data + ":/var/lib/kmsd", image, check=False)
    assert p.returncode == 1
    assert "the volume /var/lib/kmsd is not writable by this container's user (uid 5696" in p.stderr
    assert os.listdir(data) == []


def _compose_node_args(service):
    """`podman run` options for one service of compose-cluster.yaml, read
    from the file as a compose tool would (network, read-only root, tmpfs,
    capabilities, security options, environment); podman-compose 1.0 cannot
    run that file (it adds a bridge network to every container, which host
    networking refuses), so the test runs the steps the file documents for
    plain podman."""
    args = ["--network", service["network_mode"], "--health-interval", "disable"]
    if service.get("read_only"):
        args.append("--read-only")
    for t in service.get("tmpfs", []):
        args += ["--tmpfs", t]
    for cap in service.get("cap_drop", []):
        args += ["--cap-drop", cap]
    for opt in service.get("security_opt", []):
        args += ["--security-opt", opt]
    for k, v in service.get("environment", {}).items():
        args += ["-e", "%s=%s" % (k, v)]
    return args


def test_compose_cluster_of_three(pm, image, tmp_path):
    """packaging/docker/compose-cluster.yaml: three containers formed into a
    cluster with the commands in its header; a key made through one node's
    port is served by another's, and cluster verify passes."""
    import json
    import yaml
    with open(os.path.join(REPO, "packaging", "docker", "compose-cluster.yaml")) as f:
        compose = yaml.safe_load(f)
    assert set(compose["services"]) == {"kms-a", "kms-b", "kms-c"}
    nodes = {}
    token = None
    for name in ("kms-a", "kms-b", "kms-c"):
        svc = compose["services"][name]
        assert svc["image"].endswith("kmsd:latest}") and svc["network_mode"] == "host"
        assert svc["volumes"] == ["%s-data:/var/lib/kmsd" % name]
        data = _host_dir(str(tmp_path / name))
        kport, pport = kmsd_harness.free_port(), kmsd_harness.free_port()
        common = _compose_node_args(svc) + ["-v", data + ":/var/lib/kmsd"]
        where = ["--dir", "/var/lib/kmsd", "--listen", "127.0.0.1:%d" % kport, "--peer-listen",
                 "127.0.0.1:%d" % pport, "--node-id", name, "--host", "localhost"]
        if token is None:
            pm.run("run", "--rm", *common, image, "kmsctl", "init", *where)
        else:
            pm.run("run", "--rm", *common, image, "kmsctl", "cluster", "join", token, *where)
        c = pm.name(name)
        pm.run("run", "-d", "--name", c, *common, image)
        pm.wait_log(c, READY)
        nodes[name] = (c, kport, data)
        a = nodes["kms-a"][0]
        token = pm.run("exec", a, "kmsctl", "cluster", "invite").stdout.strip().splitlines()[-1]

    a, a_port, a_data = nodes["kms-a"]

    def status_ok():
        p = pm.run("exec", a, "kmsctl", "--json", "cluster", "status", check=False)
        rows = json.loads(p.stdout) if p.stdout.strip() else []
        return sum(1 for r in rows if r["state"] == "ok" and r["links"] in ("self", "in+out")) == 3

    kmsd_harness.wait_for(status_ok, timeout=60, what="three nodes ok")
    uid, key = _create_key(a_port, os.path.join(a_data, "pki"))
    c_port = nodes["kms-c"][1]

    def on_c():
        try:
            return _get_key(c_port, os.path.join(a_data, "pki"), uid) == key
        except Exception:  # not there yet
            return False

    kmsd_harness.wait_for(on_c, timeout=30, what="key on kms-c")
    kmsd_harness.wait_for(
        lambda: pm.run("exec", a, "kmsctl", "cluster", "verify", check=False).returncode == 0,
        timeout=30, what="cluster verify exit 0")
