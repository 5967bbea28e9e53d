"""tests/interop/test_packaging_cli.py: bash completion and man pages of the
built kmsctl and kmsd ($KMSD_BUILD).

- packaging/bash-completion/kmsctl, sourced into bash and driven the way
  readline does (COMP_WORDS / COMP_CWORD, then _kmsctl): every command of
  `kmsctl --help`, the subcommands and options of each command, option
  values (--role, --reason, files for --config), global options after
  which the command is still found; `make install` puts it where
  bash-completion looks (a dry run; the .deb test checks the package);
- packaging/man/: every command, subcommand and long option the programs'
  --help texts mention appears in kmsctl(8) / kmsd(8), every configuration
  key of `kmsd --check-config` in kmsd.yaml(5), the environment variables
  kmsd reads in kmsd(8); each page renders without groff warnings.
So a new command or option fails here until the page and the completion
know it.
"""
import os
import re
import shutil
import subprocess

import pytest

import kmsd_harness

REPO = kmsd_harness.REPO
COMPLETION = os.path.join(REPO, "packaging", "bash-completion", "kmsctl")
MAN = os.path.join(REPO, "packaging", "man")


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kw)


def kmsctl_help(*args):
    p = run(kmsd_harness.kmsctl_bin(), *args, "--help")
    return p.stdout + p.stderr


def commands():
    out = kmsctl_help()
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [l.split()[0] for l in block.splitlines() if l.strip()]


def subcommands(cmd):
    return sorted(set(re.findall(r"kmsctl(?: \[[^\]]*\])* %s ([a-z][a-z-]*)" % re.escape(cmd),
                                 kmsctl_help(cmd))))


def options(text):
    return sorted(set(re.findall(r"--[a-z][a-z0-9-]*", text)))


# ------------------------------------------------------------ completion
def complete(*words):
    """COMPREPLY for the command line `words` (the last one is being typed)."""
    script = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_kmsctl\nprintf "%%s\\n" "${COMPREPLY[@]}"\n'
              % (COMPLETION, " ".join("'%s'" % w for w in words), len(words) - 1))
    env = dict(os.environ, PATH=kmsd_harness.build_dir() + ":" + os.environ["PATH"])
    p = run("bash", "--norc", "-c", script, env=env)
    assert p.returncode == 0, p.stderr
    return sorted(w for w in p.stdout.split("\n") if w)


def test_completes_every_command():
    cmds = commands()
    assert {"init", "status", "tenant", "client", "key", "backup", "restore", "rotate"} <= set(cmds)
    assert complete("kmsctl", "") == sorted(cmds)
    assert complete("kmsctl", "ten") == ["tenant"]
    assert complete("kmsctl", "r") == ["restore", "rotate"]
    # Global options do not hide the command.
    assert complete("kmsctl", "--json", "--config", "/etc/kmsd/kmsd.yaml", "rotate", "") == \
        ["master", "status", "store-key"]
    assert complete("kmsctl", "--") == ["--config", "--help", "--json", "--timeout", "--version"]
    assert complete("kmsctl", "--timeout", "5", "ten") == ["tenant"]


def test_completes_subcommands_and_options():
    for cmd in commands():
        subs = subcommands(cmd)
        if subs:
            assert complete("kmsctl", cmd, "") == subs, cmd
        want = set(options(kmsctl_help(cmd))) | {"--help"}
        assert set(complete("kmsctl", cmd, "--")) == want, cmd
    assert complete("kmsctl", "tenant", "") == ["add", "list", "remove"]
    assert "--host" in complete("kmsctl", "init", "--h")
    assert complete("kmsctl", "client", "add", "--role", "") == ["admin", "client"]
    assert complete("kmsctl", "key", "revoke", "1", "--reason", "c") == ["cessation", "compromise"]
    assert complete("kmsctl", "key", "create", "--length", "") == ["128", "192", "256"]
    assert complete("kmsctl", "ttlv", "decode", "--format", "") == ["json", "ttlv", "xml"]
    assert complete("kmsctl", "nosuchcommand", "--") == []


def test_completes_files(tmp_path):
    (tmp_path / "kmsd-one.yaml").write_text("")
    (tmp_path / "sub").mkdir()
    prefix = str(tmp_path / "k")
    assert complete("kmsctl", "--config", prefix) == [prefix + "msd-one.yaml"]
    assert complete("kmsctl", "init", "--dir", str(tmp_path / "s")) == [str(tmp_path / "sub")]
    assert complete("kmsctl", "audit", "verify", prefix) == [prefix + "msd-one.yaml"]
    (tmp_path / "with space.log").write_text("")
    assert complete("kmsctl", "audit", "verify", str(tmp_path / "w")) == [str(tmp_path / "with space.log")]


def test_make_install_puts_it_where_bash_completion_looks():
    # A dry run: a real one would relink the build for an install.
    p = run("make", "--no-print-directory", "-n", "install", "PREFIX=/usr", "DESTDIR=/x", cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"install -m 0644 packaging/bash-completion/kmsctl "
                     r"/x/usr/share/bash-completion/completions/kmsctl", p.stdout), p.stdout


# ------------------------------------------------------------ man pages
def page(name):
    """The page's text as a reader sees it (roff escapes undone)."""
    with open(os.path.join(MAN, name)) as f:
        src = f.read()
    return re.sub(r"\\f[BIRP]|\\&", "", src).replace("\\-", "-")


def test_kmsctl_page_current_with_help():
    text = page("kmsctl.8")
    missing = []
    for opt in options(kmsctl_help()):
        if opt not in text:
            missing.append("kmsctl " + opt)
    for cmd in commands():
        if not re.search(r"^\.(TP\n)?\.B %s\b" % re.escape(cmd), text, re.M) and \
           not re.search(r"\n\.B %s\b" % re.escape(cmd), text):
            missing.append("command " + cmd)
        for sub in subcommands(cmd):
            if not re.search(r"\b%s\b" % re.escape(sub), text):
                missing.append("%s %s" % (cmd, sub))
        for opt in options(kmsctl_help(cmd)):
            if opt not in text:
                missing.append("%s %s" % (cmd, opt))
    assert missing == [], "kmsctl.8 does not mention: " + ", ".join(missing)


def test_kmsd_page_current_with_help():
    p = run(kmsd_harness.kmsd_bin(), "--help")
    usage = p.stdout + p.stderr
    text = page("kmsd.8")
    for opt in re.findall(r"(?<![\w-])-{1,2}[a-z][a-z-]*", usage):
        assert opt in text, "kmsd.8 does not mention " + opt
    # The KMSD_* environment variables named in the daemon's sources.
    env = set()
    for dirpath, dirs, files in os.walk(REPO):
        rel = os.path.relpath(dirpath, REPO)
        if rel.split(os.sep)[0] in ("tests", "bench", "kmsctl", ".git") or rel.startswith("build"):
            dirs[:] = []
            continue
        for f in files:
            if f.endswith(".c"):
                with open(os.path.join(dirpath, f)) as fh:
                    env |= set(re.findall(r'"(KMSD_[A-Z_]+)"', fh.read()))
    assert {"KMSD_LISTEN", "KMSD_LOG_LEVEL"} <= env
    for var in sorted(env):
        assert var in text, "kmsd.8 does not document " + var


def test_kmsd_yaml_page_lists_every_key(tmp_path):
    conf = tmp_path / "empty.yaml"
    conf.write_text("")
    dump = run(kmsd_harness.kmsd_bin(), "--check-config", str(conf)).stdout
    text = page("kmsd.yaml.5")
    keys = re.findall(r"^(?:  )?([a-z_]+):", dump, re.M)
    assert len(keys) > 40
    missing = [k for k in keys if not re.search(r"\b%s\b" % k, text)]
    assert missing == [], "kmsd.yaml.5 does not mention: " + ", ".join(missing)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
@pytest.mark.parametrize("name", ["kmsd.8", "kmsctl.8", "kmsd.yaml.5"])
def test_page_renders_without_warnings(name):
    p = run("groff", "-man", "-ww", "-Tutf8", "-z", os.path.join(MAN, name))
    assert p.returncode == 0 and p.stderr == "", p.stderr
