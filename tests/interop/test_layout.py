"""tests/interop/test_layout.py: the tree keeps the layout docs/design.md
describes (static checks of the sources, no kmsd needed).

- Every `#include "<folder>/..."` of a module's sources names a folder the
  module may depend on: the "depends on" column of docs/design.md's module
  table ("everything" for server/), and that graph has no cycle.
- A folder's private headers (anything but its public header) are included
  only by the folder itself, by unit tests and fuzz targets named after it,
  and kmsctl's headers by unit tests (they drive kmsctl's command functions
  in process); tests/README.md states the rule.
- common/ and ttlv/ include neither OpenSSL, SQLite nor libuv (the fuzzers
  link only them).
- tests/README.md names every unit test, interop test and fuzz target.
"""
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([A-Za-z0-9_]+\.h)"', re.M)
SYSTEM = re.compile(r'^\s*#\s*include\s+<([^>]+)>', re.M)
# The public header of each folder whose name is not <folder>/<folder>.h.
PUBLIC = {"common": "kms.h", "replication": "repl.h"}
# The short name tests and fuzz targets use for a folder.
SHORT = {"replication": "repl"}
# Fuzz targets named after what they parse rather than their folder.
FUZZ_FOLDER = {"fuzz_http": "server", "fuzz_keyformat": "crypto",
               "fuzz_repl_frame": "replication", "fuzz_store_clocks": "store"}


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def module_table():
    """{folder: set of folders it may include} from docs/design.md."""
    deps = {}
    for line in read("docs/design.md").splitlines():
        m = re.match(r"\|\s*`([a-z_]+)/`\s*\|.*\|\s*([^|]+?)\s*\|\s*$", line)
        if m:
            deps[m.group(1)] = m.group(2)
    folders = set(deps)
    top = {f for f, text in deps.items() if text.strip() == "everything"}
    out = {}
    for folder, text in deps.items():
        if folder in top:
            out[folder] = folders - top  # every folder but the other top ones
        else:
            words = set(re.findall(r"[a-z_]+", text))
            out[folder] = {w for w in words if w in folders}
        out[folder] |= {folder, "common"}
    return out


def sources(folder):
    base = os.path.join(ROOT, folder)
    for name in sorted(os.listdir(base)):
        if name.endswith((".c", ".h")):
            yield os.path.join(folder, name)


def test_module_table_lists_every_folder_and_has_no_cycle():
    deps = module_table()
    code_folders = {d for d in os.listdir(ROOT)
                    if os.path.isdir(os.path.join(ROOT, d)) and any(
                        n.endswith(".c") for n in os.listdir(os.path.join(ROOT, d)))}
    assert code_folders - {"tests"} <= set(deps), \
        f"docs/design.md's module table misses {sorted(code_folders - set(deps) - {'tests'})}"
    state = {}

    def visit(folder, path):
        if state.get(folder) == "done":
            return
        assert state.get(folder) != "open", f"dependency cycle: {' -> '.join(path + [folder])}"
        state[folder] = "open"
        for d in sorted(deps[folder] - {folder}):
            visit(d, path + [folder])
        state[folder] = "done"

    for folder in sorted(deps):
        visit(folder, [])


def test_includes_follow_the_module_table():
    deps = module_table()
    bad = []
    for folder in sorted(deps):
        for path in sources(folder):
            for m in INCLUDE.finditer(read(path)):
                target = m.group(1)
                if target in deps and target not in deps[folder]:
                    bad.append(f"{path} includes {target}/{m.group(2)} "
                               f"({folder}/ may use {sorted(deps[folder] - {folder})})")
    assert not bad, "\n".join(bad)


def private_header_user_ok(path, folder):
    """May `path` include a private header of `folder`?"""
    if path.startswith(folder + "/"):
        return True
    name = os.path.splitext(os.path.basename(path))[0]
    short = SHORT.get(folder, folder)
    if path.startswith("tests/unit/"):
        return folder == "kmsctl" or name == f"test_{short}" or name.startswith(f"test_{short}_")
    if path.startswith("tests/fuzz/"):
        return FUZZ_FOLDER.get(name) == folder or name.startswith(f"fuzz_{short}")
    return False


def test_private_headers_stay_private():
    deps = module_table()
    users = []
    for folder in sorted(deps):
        users += list(sources(folder))
    for sub in ("tests/unit", "tests/unit/util", "tests/fuzz"):
        users += [os.path.join(sub, n) for n in sorted(os.listdir(os.path.join(ROOT, sub)))
                  if n.endswith((".c", ".h"))]
    bad = []
    for path in users:
        for m in INCLUDE.finditer(read(path)):
            folder, header = m.group(1), m.group(2)
            if folder not in deps or header == PUBLIC.get(folder, f"{folder}.h"):
                continue
            if not private_header_user_ok(path, folder):
                bad.append(f"{path} includes {folder}/{header}, private to {folder}/")
    assert not bad, "\n".join(bad)


def test_common_and_ttlv_need_no_heavy_library():
    bad = []
    for folder in ("common", "ttlv"):
        for path in sources(folder):
            if path in ("ttlv/json.c", "ttlv/xml.c"):
                continue  # the message encodings: libjansson / libexpat only
            for m in SYSTEM.finditer(read(path)):
                inc = m.group(1)
                if inc.startswith(("openssl/", "sqlite3", "uv.h", "uv/", "jansson", "expat")):
                    bad.append(f"{path} includes <{inc}>")
    assert not bad, "\n".join(bad)


def test_readme_names_every_test():
    readme = read("tests/README.md")
    missing = []
    for sub, pat in (("tests/unit", r"^test_.*\.c$"), ("tests/interop", r"^test_.*\.py$"),
                     ("tests/fuzz", r"^fuzz_.*\.c$")):
        for name in sorted(os.listdir(os.path.join(ROOT, sub))):
            if re.match(pat, name) and f"`{name}`" not in readme:
                missing.append(f"{sub}/{name}")
    assert not missing, ("tests/README.md does not name " + ", ".join(missing)
                         + ": add each to its module's row of the table")
