#!/usr/bin/env python3
"""Regenerate tests/fuzz/corpus/backup/ from real `kmsctl backup` files.

Starts a scratch kmsd (tests/interop/kmsd_harness.py, `kmsctl init` in a
temporary directory) and takes backups of it as it fills, always with the
key file fuzz_backup.c restores with (the 32 bytes 0x00..0x1f, written as
64 hex digits):
  - empty: no object (header and trailer only);
  - keys: AES keys with names and custom attributes, one activated, one
    destroyed (no key material in the file), a secret data object;
  - tenants: a second tenant with a password client and a CN client, an
    RSA-2048 key pair and an EC certificate-less key pair;
  - passphrase: the same store under a passphrase (refused by the target
    before Argon2id runs: it covers the header's KDF check).
Each file is named by its SHA-1, as libFuzzer names its own finds. The
passphrase and passwords are throwaway values. Run from the repository
root with /usr/bin/python3 (PyKMIP):
    tests/fuzz/make-backup-corpus.py [BUILD_DIR]   (default: build)
"""
import hashlib
import os
import shutil
import sys
import tempfile

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
os.environ["KMSD_BUILD"] = os.path.abspath(BUILD)
sys.path.insert(0, os.path.abspath("tests/interop"))
import kmsd_harness as H  # noqa: E402
from kmip import enums  # noqa: E402
from kmip.pie import objects  # noqa: E402

OUT = os.path.abspath("tests/fuzz/corpus/backup")
KEY_HEX = bytes(range(32)).hex() + "\n"


def backup(k, tmp, name, passphrase=False):
    path = os.path.join(tmp, name + ".bak")
    if passphrase:
        secret = os.path.join(tmp, "pass")
        with open(secret, "w") as f:
            f.write("throwaway backup passphrase\n")
        k.kmsctl("backup", "--out", path, "--passphrase-file", secret)
    else:
        secret = os.path.join(tmp, "key")
        with open(secret, "w") as f:
            f.write(KEY_HEX)
        k.kmsctl("backup", "--out", path, "--key-file", secret)
    with open(path, "rb") as f:
        data = f.read()
    out = os.path.join(OUT, hashlib.sha1(data).hexdigest())
    with open(out, "wb") as f:
        f.write(data)
    print("%-10s %6d bytes  %s" % (name, len(data), os.path.basename(out)))


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="kmsd-backup-corpus-")
    k = H.Kmsd(tmp)
    try:
        backup(k, tmp, "empty")
        c = k.pykmip_client()
        try:
            ids = []
            for i in range(3):
                ids.append(c.create(enums.CryptographicAlgorithm.AES, 256, name="corpus-aes-%d" % i))
            c.activate(ids[0])
            c.destroy(ids[2])
            c.register(objects.SecretData(b"corpus secret", enums.SecretDataType.PASSWORD,
                                          name="corpus-secret"))
            backup(k, tmp, "keys")
            k.kmsctl("tenant", "add", "t2")
            pw = os.path.join(tmp, "pw")
            with open(pw, "w") as f:
                f.write("throwaway password\n")
            k.kmsctl("client", "add", "--tenant", "t2", "--user", "corpus-user", "--password-file", pw)
            k.kmsctl("client", "add", "--tenant", "t2", "--cn", "corpus-cn")
            c.create_key_pair(enums.CryptographicAlgorithm.RSA, 2048)
            c.create_key_pair(enums.CryptographicAlgorithm.EC, 256,
                              public_usage_mask=[enums.CryptographicUsageMask.VERIFY],
                              private_usage_mask=[enums.CryptographicUsageMask.SIGN])
        finally:
            c.close()
        backup(k, tmp, "tenants")
        backup(k, tmp, "passphrase", passphrase=True)
    finally:
        k.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
