"""tests/interop/test_admin_backup_force.py: `kmsctl backup --force` never
destroys the previous backup (security review finding S3).

Before the fix, --force opened the existing file with O_TRUNC and, when the
backup then failed (kmsd unreachable, refused, disk full), unlinked it: the
operator lost the last good backup. Now the new backup goes to a 0600
temporary file beside it and replaces the old one only after kmsd reported
success. Real kmsctl, real kmsd (kmsd_harness), real files.
"""
import glob
import os
import subprocess

import kmsd_harness as H


def ctl(k, *args):
    return subprocess.run([H.kmsctl_bin(), "--config", k.conf_path, *args],
                          capture_output=True, text=True, timeout=120)


def test_failed_forced_backup_keeps_the_old_one(tmp_path):
    k = H.Kmsd(tmp_path / "srv", start=False)  # configured, but no kmsd answers
    old = tmp_path / "kms.bak"
    old.write_bytes(b"KMSDBAK1 previous good backup")
    os.chmod(old, 0o600)
    pw = tmp_path / "pass"
    pw.write_text("correct horse battery\n")
    p = ctl(k, "backup", "--out", str(old), "--passphrase-file", str(pw), "--force")
    assert p.returncode != 0, p.stdout + p.stderr
    assert old.read_bytes() == b"KMSDBAK1 previous good backup"
    assert glob.glob(str(old) + ".tmp-*") == []  # no partial file left behind


def test_forced_backup_replaces_atomically_with_mode_0600(tmp_path):
    k = H.Kmsd(tmp_path / "srv")
    try:
        old = tmp_path / "kms.bak"
        old.write_bytes(b"stale")
        os.chmod(old, 0o644)
        pw = tmp_path / "pass"
        pw.write_text("correct horse battery\n")
        p = ctl(k, "backup", "--out", str(old), "--passphrase-file", str(pw), "--force")
        assert p.returncode == 0, p.stdout + p.stderr
        assert old.read_bytes().startswith(b"KMSDBAK1")
        assert os.stat(old).st_mode & 0o777 == 0o600
        assert glob.glob(str(old) + ".tmp-*") == []
        # Without --force an existing file is still refused (usage error).
        p = ctl(k, "backup", "--out", str(old), "--passphrase-file", str(pw))
        assert p.returncode == 2, p.stdout + p.stderr
    finally:
        problems = k.stop()
    assert not problems, problems
