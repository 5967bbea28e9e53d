"""tests/interop/conftest.py: pytest fixtures shared by every interop test.

- `kmsd`: a running kmsd (fresh directory from `kmsctl init`, default
  configuration) for one test; killed at teardown.
- `kmsd_factory(overrides=None, start=True)`: the same with configuration
  overrides, e.g. kmsd_factory({"limits": {"idle_timeout": "2s"}}); any
  number per test.
- `module_kmsd`, `module_pykmip`: one kmsd and one PyKMIP client shared by
  all the tests of a module.
When a test fails, the log of every kmsd it started (and of every node of
the module fixture named `cluster`) is attached to the
failure report (section "kmsd log"). The harness itself is kmsd_harness.py.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kmsd_harness  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        # ...and of a module's cluster (a fixture named `cluster`).
        cluster = getattr(item, "funcargs", {}).get("cluster") or []
        for k in list(getattr(item, "_kmsd_instances", [])) + list(cluster):
            rep.sections.append(("kmsd log %s" % k.log_path, k.log_tail(12000)))


@pytest.fixture
def kmsd_factory(request, tmp_path):
    made = []
    request.node._kmsd_instances = made

    def make(overrides=None, start=True):
        d = tmp_path / ("k%d" % len(made))
        d.mkdir()
        k = kmsd_harness.Kmsd(str(d), overrides, start=False)
        made.append(k)
        if start:
            k.start()
        return k

    yield make
    for k in made:
        k.kill()


@pytest.fixture
def kmsd(kmsd_factory):
    return kmsd_factory()


@pytest.fixture(scope="module")
def module_kmsd():
    """One kmsd (default configuration) shared by every test of a module."""
    with kmsd_harness.server() as k:
        yield k


@pytest.fixture(scope="module")
def module_pykmip(module_kmsd):
    """An opened PyKMIP ProxyKmipClient on module_kmsd, shared by the module."""
    c = module_kmsd.pykmip_client()
    try:
        yield c
    finally:
        c.close()
