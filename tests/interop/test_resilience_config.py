"""tests/interop/test_resilience_config.py: what kmsd says about risky
settings and files at start-up.

- warnings (kmsd starts): tls.key readable by others (0644), admin.mode
  0777, TLS 1.2 suites without AEAD (CBC) in tls.ciphers;
- refusals with exit status 2 and a line naming the problem: a master key
  file that is not 0600; run_as a user who cannot use the database's
  files (root-owned, 0700);
- a backup's temporary copy left by a crash is removed at start.
"""
import os
import shutil
import subprocess

import pytest

import kmsd_harness as H


def run_once(k, timeout=60):
    """Start kmsd in the foreground until it exits (for refusals)."""
    return subprocess.run([H.kmsd_bin(), "-c", k.conf_path], capture_output=True, text=True,
                          timeout=timeout)


def test_warnings_for_weak_modes_and_suites(tmp_path):
    k = H.Kmsd(tmp_path, {"admin": {"mode": "0777"},
                          "tls": {"ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384:"
                                             "ECDHE-ECDSA-AES128-SHA"}}, start=False)
    key = os.path.join(k.dir, k.config()["tls"]["key"])
    os.chmod(key, 0o644)
    k.start()
    try:
        log = k.wait_log(r"ready") and k.log_text()
        assert "tls.key %s is mode 0644" % key in log, log[-3000:]
        assert "admin.mode 0777 lets every local user" in log
        assert "tls.ciphers allows suites without AEAD (CBC): ECDHE-ECDSA-AES128-SHA" in log
    finally:
        k.kill()


def test_master_key_mode_exits_2(tmp_path):
    k = H.Kmsd(tmp_path, start=False)
    mk = os.path.join(k.dir, k.config()["hsm"]["key_file"])
    os.chmod(mk, 0o644)
    p = run_once(k)
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "must be 0600" in p.stdout + p.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="run_as needs kmsd started as root")
def test_run_as_with_root_owned_files_names_the_file(tmp_path):
    k = H.Kmsd(tmp_path, {"run_as": "nobody"}, start=False)
    os.chmod(k.dir, 0o700)
    p = run_once(k)
    out = p.stdout + p.stderr
    assert p.returncode == 2, (p.returncode, out[-2000:])
    assert "run_as 'nobody': cannot" in out, out[-2000:]
    assert "chown nobody" in out
    assert "input/output error" not in out


def test_backup_leftovers_removed_at_start(tmp_path):
    k = H.Kmsd(tmp_path, start=False)
    db = os.path.join(k.dir, k.config()["store"]["path"])
    left = [db + ".backup-4242-1796500000.db", db + ".backup-4242-1796500000.db-wal"]
    for f in left:
        with open(f, "wb") as fh:
            fh.write(b"\0" * 4096)
    keep = db + ".notes"
    open(keep, "w").close()
    k.start()
    try:
        for f in left:
            assert not os.path.exists(f), f
        assert os.path.exists(keep)
        assert "a backup's temporary copy left by a crash" in k.log_text()
    finally:
        k.kill()
