#!/usr/bin/env python3
"""Regenerate tests/fuzz/corpus/ttlv/ from tests/vectors/kmip-1.1-testcases.txt:
one file per distinct message (named by the SHA-1 of its bytes, as libFuzzer
names its own finds), plus a few hand-written seeds in the printed text form
(the target also parses its input as text). Run from the repository root."""
import hashlib
import os

out = "tests/fuzz/corpus/ttlv"
os.makedirs(out, exist_ok=True)
seen = set()
for line in open("tests/vectors/kmip-1.1-testcases.txt"):
    if line.startswith("#"):
        continue
    raw = bytes.fromhex(line.rstrip("\n").split("\t")[3])
    h = hashlib.sha1(raw).hexdigest()
    if h in seen:
        continue
    seen.add(h)
    open(os.path.join(out, h), "wb").write(raw)
texts = [
    "Tag: Request Payload, Type: Structure, Data:\n"
    "  Tag: Object Type, Type: Enumeration, Data: Symmetric Key\n"
    "  Tag: Template-Attribute, Type: Structure, Data:\n"
    "    Tag: Attribute, Type: Structure, Data:\n"
    "      Tag: Attribute Name, Type: Text String, Data: Cryptographic Usage Mask\n"
    "      Tag: Attribute Value, Type: Integer, Data: 0x0000000C (Encrypt, Decrypt)\n",
    "Tag: Key Block (0x420040), Type: Structure (0x01), Data:\n"
    "  Tag: Key Value (0x420045), Type: Structure (0x01), Data:\n"
    "    Tag: Key Material (0x420043), Type: Structure (0x01), Data:\n"
    "      Tag: Modulus (0x420052), Type: Big Integer (0x04), Data: 00AB7F161C004249 (48226000000)\n"
    "      Tag: Public Exponent (0x42006C), Type: Big Integer (0x04), Data: 010001 (65537)\n",
    "Tag: Description, Type: Text String, Data: \"two\\nlines \\\"quoted\\\" \\x01\"\n",
    "Tag: Response Header (0x42007A), Type: Structure (0x01), Data:\n"
    "  Tag: Time Stamp (0x420092), Type: Date-Time (0x09), Data: 0x000000004F9A54E5 (Fri Apr 27 08:12:21 UTC 2012)\n"
    "  Tag: Lease Time (0x420049), Type: Interval (0x0A), Data: 0x000D2F00\n"
    "  Tag: Usage Limits Count (0x420096), Type: Long Integer (0x03), Data: 0x00000000000001F4 (500)\n"
    "  Tag: Fresh (0x4200A8), Type: Boolean (0x06), Data: FALSE\n"
    "  Tag: Nonce ID (0x4200C9), Type: Byte String (0x08), Data:\n"
    "  Tag: Unknown tag (0x540001), Type: Structure (0x01), Data: null\n",
]
for t in texts:
    raw = t.encode()
    h = hashlib.sha1(raw).hexdigest()
    open(os.path.join(out, h), "wb").write(raw)
    seen.add(h)
print(len(seen), "files in", out)
