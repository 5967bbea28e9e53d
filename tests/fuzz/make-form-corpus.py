#!/usr/bin/env python3
"""Regenerate tests/fuzz/corpus/ttlv_json/ and tests/fuzz/corpus/ttlv_xml/:
every distinct message of tests/vectors/kmip-1.1-testcases.txt in the JSON
and XML encodings, converted by a built kmsctl (`kmsctl ttlv decode --hex |
kmsctl ttlv encode --format json|xml`; JSON then made compact), plus a few
hand-written seeds for the spellings the converters never write (hex tags
and values, offsets in dates, <TTLV> elements, a DOCTYPE). Files are named
by the SHA-1 of their bytes, as libFuzzer names its finds.

usage: tests/fuzz/make-form-corpus.py BUILD_DIR   (from the repository root)"""
import hashlib
import json
import os
import subprocess
import sys

kmsctl = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "kmsctl")
outs = {"json": "tests/fuzz/corpus/ttlv_json", "xml": "tests/fuzz/corpus/ttlv_xml"}
for d in outs.values():
    os.makedirs(d, exist_ok=True)


def put(form, data):
    path = os.path.join(outs[form], hashlib.sha1(data).hexdigest())
    with open(path, "wb") as f:
        f.write(data)


seen = set()
for line in open("tests/vectors/kmip-1.1-testcases.txt"):
    if line.startswith("#"):
        continue
    hexmsg = line.rstrip("\n").split("\t")[3]
    if hexmsg in seen:
        continue
    seen.add(hexmsg)
    text = subprocess.run([kmsctl, "ttlv", "decode", "--hex"], input=hexmsg.encode(),
                          capture_output=True, check=True).stdout
    for form in outs:
        data = subprocess.run([kmsctl, "ttlv", "encode", "--format", form], input=text,
                              capture_output=True, check=True).stdout
        if form == "json":
            data = json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False).encode()
        put(form, data)

put("json", b'{"tag":"RequestPayload","value":[{"tag":"0x540001","type":"TextString","value":"na"},'
            b'{"tag":"CryptographicUsageMask","type":"Integer","value":"Decrypt|0x00000010|Encrypt"},'
            b'{"tag":"UsageLimitsCount","type":"LongInteger","value":"0x7FFFFFFFFFFFFFFF"},'
            b'{"tag":"Modulus","type":"BigInteger","value":-255},'
            b'{"tag":"ObjectType","type":"Enumeration","value":"0x0000000A"},'
            b'{"tag":"Fresh","type":"Boolean","value":"0x0000000000000000"},'
            b'{"tag":"TimeStamp","type":"DateTime","value":"2012-04-27T10:12:21.000+02:00"},'
            b'{"tag":"LeaseTime","type":"Interval","value":"0x000D2F00"},'
            b'{"tag":"VendorExtension","value":[{"tag":"0x014242","type":"ByteString","value":"00ff"}]}]}')
put("xml", b'<?xml version="1.0" encoding="UTF-8"?>\n<RequestPayload type="Structure">'
           b'<TTLV tag="0x540001" type="TextString" value="a&#10;&lt;b&gt;"/>'
           b'<CryptographicUsageMask type="Integer" value="Decrypt\n  Encrypt 0x00000010"/>'
           b'<UsageLimitsCount type="LongInteger" value="-9223372036854775808"/>'
           b'<Modulus type="BigInteger" value="0xff01"/>'
           b'<Fresh type="Boolean" value="0"/>'
           b'<TimeStamp type="DateTime" value="2012-04-27T03:42:21-04:30"/>'
           b'<VendorExtension><TTLV tag="0x014242"></TTLV></VendorExtension></RequestPayload>')
put("xml", b'<!DOCTYPE a [<!ENTITY b "c">]><Description type="TextString" value="&b;"/>')
