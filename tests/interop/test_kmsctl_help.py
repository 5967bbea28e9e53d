"""kmsctl's help, its man page and its bash completion agree: every command,
subcommand and option that `kmsctl --help`, `kmsctl COMMAND --help` and
`kmsctl COMMAND SUB --help` name is in kmsctl(8) (in that command's entries)
and is offered by packaging/bash-completion/kmsctl (run in a real bash); the
global options (those of `kmsctl --help`) are in GLOBAL OPTIONS and completed
before a command; every option that takes a value has its value completed
(or deliberately left free) instead of offering commands. kmsd(8) names
every kmsd option and KMSD_* variable, kmsd.yaml(5) every configuration key
kmsd accepts. Cheap: no kmsd runs."""
import functools
import os
import re
import subprocess

import pytest

from kmsd_harness import REPO, kmsctl_bin, kmsd_bin

COMPLETION = os.path.join(REPO, "packaging", "bash-completion", "kmsctl")
MAN = os.path.join(REPO, "packaging", "man")
USAGE_SUB = r"^.*kmsctl(?: \[[^]]*\])* %s ([a-z][a-z-]*)"
OPTION = re.compile(r"--[a-z][a-z0-9-]*")
VALUE_OPTION = re.compile(r"(--[a-z][a-z0-9-]*)[ =]([A-Z][A-Z_:|]*|ttlv\|)")


def kmsctl(*args):
    p = subprocess.run([kmsctl_bin(), "--config", "/nonexistent", *args], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    return p.stdout + p.stderr


@functools.lru_cache(maxsize=None)
def global_options():
    """The options of `kmsctl --help` (given before the command)."""
    return frozenset(set(OPTION.findall(kmsctl("--help"))) | {"--help", "--version"})


def commands():
    out = kmsctl("--help")
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def subcommands(cmd):
    return sorted({m.group(1) for m in re.finditer(USAGE_SUB % re.escape(cmd),
                                                  kmsctl(cmd, "--help"), re.M)})


def help_of(cmd, sub=None):
    return kmsctl(cmd, sub, "--help") if sub else kmsctl(cmd, "--help")


def all_help():
    """{(cmd, sub or None): help text}"""
    out = {}
    for c in commands():
        if c == "version":
            continue
        out[(c, None)] = help_of(c)
        for s in subcommands(c):
            out[(c, s)] = help_of(c, s)
    return out


@pytest.fixture(scope="module")
def helps():
    assert os.access(kmsctl_bin(), os.X_OK)
    assert {"--config", "--json"} <= global_options(), global_options()
    return all_help()


def test_global_options_are_in_the_man_page_and_completed(helps):
    text = roff_text(os.path.join(MAN, "kmsctl.8"))
    section = text.split(".SH GLOBAL OPTIONS", 1)[1].split("\n.SH", 1)[0]
    missing = [o for o in sorted(global_options()) if not re.search(re.escape(o) + r"(?![a-z0-9-])", section)]
    assert not missing, "not in kmsctl(8) GLOBAL OPTIONS: %s" % missing
    got = complete("--")
    assert global_options() <= got, "global options not completed: %s" % sorted(global_options() - got)


def roff_text(path):
    s = open(path).read()
    s = re.sub(r"\\f[BIRP]", "", s).replace("\\-", "-").replace("\\(em", "-")
    return s


def man_entries(text):
    """The .TP entries of a man page: (tag line, body) pairs."""
    out = []
    parts = re.split(r"^\.TP\n", text, flags=re.M)[1:]
    for p in parts:
        lines = p.split("\n")
        tag = re.sub(r"^\.(B|BR|BI|IR|I)\s+", "", lines[0])
        body = "\n".join(lines[1:]).split("\n.SH", 1)[0].split("\n.SS", 1)[0]
        out.append((tag, body))
    return out


def test_every_command_subcommand_and_option_is_in_the_man_page(helps):
    entries = man_entries(roff_text(os.path.join(MAN, "kmsctl.8")))
    missing = []
    for (c, s), text in helps.items():
        mine = [(t, b) for t, b in entries if t.startswith(c + " ") or t == c]
        # A help shared by several commands (backup and restore): their
        # options may be in any of their entries.
        named = set(re.findall(r"^.*?kmsctl(?: \[[^]]*\])* ([a-z]+)", text, re.M))
        shared = [(t, b) for t, b in entries if t.split(" ")[0] in named]
        if not mine:
            missing.append("command %s" % c)
            continue
        tags = " ".join(t for t, _ in mine)
        whole = " ".join(t + " " + b for t, b in mine + shared)
        if s and not re.search(r"(^|[ |(\[])%s( |$|\b)" % re.escape(s), tags):
            missing.append("%s %s" % (c, s))
        for o in sorted(set(OPTION.findall(text)) - global_options()):
            if not re.search(re.escape(o) + r"(?![a-z0-9-])", whole):
                missing.append("%s%s %s" % (c, " " + s if s else "", o))
    assert not missing, "not in kmsctl(8): %s" % ", ".join(sorted(set(missing)))


def complete(*words):
    """What the completion offers after `kmsctl WORDS` (the last word is
    the one being completed)."""
    line = ["kmsctl", *words]
    script = (
        "source /usr/share/bash-completion/bash_completion 2>/dev/null\n"
        "source %s\n"
        "kmsctl() { %s --config /nonexistent \"$@\"; }\n"
        "COMP_WORDS=(%s); COMP_CWORD=%d\n"
        "_kmsctl\n"
        "printf '%%s\\n' \"${COMPREPLY[@]}\"\n"
    ) % (COMPLETION, kmsctl_bin(), " ".join("'%s'" % w for w in line), len(line) - 1)
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    return set(p.stdout.split())


def test_completion_offers_every_command_subcommand_and_option(helps):
    missing = []
    cmds = complete("")
    for c in commands():
        if c not in cmds:
            missing.append(c)
    for c in {c for c, _ in helps}:
        subs = subcommands(c)
        if subs and not set(subs) <= complete(c, ""):
            missing.append("%s {%s}" % (c, ",".join(sorted(set(subs) - complete(c, "")))))
    for (c, s), text in helps.items():
        want = set(OPTION.findall(text)) - global_options()
        got = complete(c, s, "--") if s else complete(c, "--")
        if want - got:
            missing.append("%s%s %s" % (c, " " + s if s else "", " ".join(sorted(want - got))))
    assert not missing, "not completed: %s" % "; ".join(missing)


def test_reason_values_follow_the_command():
    """key revoke's --reason offers the revocation reasons; client
    disable's is free text: nothing is offered."""
    assert {"compromise", "superseded"} <= complete("key", "revoke", "ID", "--reason", "")
    assert complete("client", "disable", "NAME", "--reason", "") == set()


def test_every_option_with_a_value_is_known_to_the_completion(helps):
    src = open(COMPLETION).read()
    block = src.split("# Values of options.", 1)[1].split("esac", 1)[0]
    known = set(OPTION.findall(block))
    takes = set()
    for text in helps.values():
        takes |= {m.group(1) for m in VALUE_OPTION.finditer(text)}
    unknown = sorted(takes - known - {"--config"})
    assert not unknown, "options whose value the completion does not know: %s" % unknown


def conf_sections():
    """{section: [keys]} from conf/schema.c's tables ("" = top level),
    deprecated keys left out."""
    src = open(os.path.join(REPO, "conf", "schema.c")).read()
    out = {}
    for m in re.finditer(r"conf_field_t (s_[a-z_]+|conf_schema)\[\] = \{(.*?)\n\};", src, re.S):
        name = "" if m.group(1) == "conf_schema" else m.group(1)[2:]
        out[name] = [k.group(1) for k in re.finditer(
            r'\{\.key = "([a-z_]+)", \.type = (CONF_T_[A-Z]+)', m.group(2))
            if k.group(2) not in ("CONF_T_DEPRECATED", "CONF_T_SECTION")]
    return out


def test_kmsd_options_environment_and_configuration_keys_are_documented():
    kmsd8 = roff_text(os.path.join(MAN, "kmsd.8"))
    for o in ("-c", "--check-config", "--version"):
        assert re.search(r"(?<![a-z-])%s(?![a-z-])" % re.escape(o), kmsd8), o
    # Every KMSD_* variable the configuration loader reads is in kmsd(8).
    load = open(os.path.join(REPO, "conf", "load.c")).read()
    env = sorted(set(re.findall(r'"(KMSD_[A-Z_]+)"', load)))
    assert len(env) >= 3, env
    assert not [e for e in env if e not in kmsd8], [e for e in env if e not in kmsd8]
    # Every key, in its section's entry of kmsd.yaml(5).
    entries = dict(man_entries(roff_text(os.path.join(MAN, "kmsd.yaml.5"))))
    sections = conf_sections()
    assert len(sections) >= 10 and "http" in sections and "format" in sections["log"], sections
    missing = []
    for sec, keys in sections.items():
        body = entries.get(sec or "top level")
        if body is None:
            missing.append(sec)
            continue
        missing += ["%s.%s" % (sec, k) for k in keys
                    if not re.search(r"(?<![a-z_])%s(?![a-z_])" % k, body)]
    assert not missing, "kmsd.yaml(5) lacks: %s" % missing
