#!/usr/bin/env python3
"""Regenerate tests/fuzz/corpus/keyformat/, the seeds of fuzz_keyformat.

Keys and certificates come from the `openssl` command line (RSA 1024/2048
and a three-prime RSA key, EC on P-256/P-384/P-521 and secp256k1, with
compressed points, without the public key and with explicit parameters,
an Ed25519 key, self-signed certificates with alternative names). Register
object structures are encoded here as TTLV, with tag and enumeration
values read from ttlv/tags.def and ttlv/enums.def. The Transparent
components and the AES key wraps (with the harness's fixed KEK) use
python3-cryptography, which PyKMIP already needs.

Each file is one input: the harness's mode byte, then the payload (see
tests/fuzz/fuzz_keyformat.c). Files are named by the SHA-1 of their bytes.
Run from the repository root; keys are new on every run.
"""
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.keywrap import aes_key_wrap, aes_key_wrap_with_padding

OUT = "tests/fuzz/corpus/keyformat"
KEK = bytes(range(32))  # the harness's KEK: "kek" is all 32 bytes, "kek16" the first 16

TAG = {m.group(2): int(m.group(1), 16)
       for m in re.finditer(r"XX\((0x[0-9A-Fa-f]+), (\w+),", open("ttlv/tags.def").read())}
ENUM = {f"{m.group(1)}.{m.group(3)}": int(m.group(2), 16)
        for m in re.finditer(r"XX\((\w+), (0x[0-9A-Fa-f]+), (\w+),", open("ttlv/enums.def").read())}

# Mode bytes of the harness.
PKCS1_PRIV, PKCS1_PUB, PKCS8, SEC1, SPKI, CERT, OBJECT, TRANSPARENT, RAW, UNWRAP = range(10)
# Index of each Transparent format in the harness's table (mode 7).
T_RSA_PRIV, T_RSA_PUB, T_ECDSA_PRIV, T_ECDSA_PUB = 0, 1, 2, 3
T_EC_PRIV, T_EC_PUB = 8, 9


def item(tag, typ, value):
    pad = (8 - len(value) % 8) % 8
    return struct.pack(">I", TAG[tag])[1:] + bytes([typ]) + struct.pack(">I", len(value)) + \
        value + b"\0" * pad


def struct_(tag, *children):
    return item(tag, 0x01, b"".join(children))


def integer(tag, v):
    return item(tag, 0x02, struct.pack(">i", v))


def enum(tag, name):
    return item(tag, 0x05, struct.pack(">I", ENUM[name]))


def text(tag, s):
    return item(tag, 0x07, s.encode())


def data(tag, b):
    return item(tag, 0x08, b)


def bigint(tag, n):
    """Big Integer: two's complement, a multiple of 8 bytes, sign bit clear."""
    size = (n.bit_length() // 8 + 1 + 7) // 8 * 8
    return item(tag, 0x04, n.to_bytes(size, "big"))


def fmt(name):
    return enum("KEY_FORMAT_TYPE", "KEY_FORMAT_TYPE." + name)


def alg(name):
    return enum("CRYPTOGRAPHIC_ALGORITHM", "CRYPTOGRAPHIC_ALGORITHM." + name)


def key_block(format_name, material, algorithm=None, length=None, extra=b""):
    fields = [fmt(format_name), struct_("KEY_VALUE", material)]
    if algorithm:
        fields.append(alg(algorithm))
    if length:
        fields.append(integer("CRYPTOGRAPHIC_LENGTH", length))
    return struct_("KEY_BLOCK", *fields, extra)


def wrapped_key_block(format_name, material, algorithm, length, key_id, mode, no_encoding):
    """A Key Block whose Key Value is wrapped with the harness's KEK."""
    kek = KEK if key_id == "kek" else KEK[:16]
    plain = material_bytes(material) if no_encoding else struct_("KEY_VALUE", material)
    wrap = aes_key_wrap_with_padding if mode == "AES_KEY_WRAP_PADDING" else aes_key_wrap
    kwd = [enum("WRAPPING_METHOD", "WRAPPING_METHOD.ENCRYPT"),
           struct_("ENCRYPTION_KEY_INFORMATION", text("UNIQUE_IDENTIFIER", key_id),
                   struct_("CRYPTOGRAPHIC_PARAMETERS",
                           enum("BLOCK_CIPHER_MODE", "BLOCK_CIPHER_MODE." + mode)))]
    if no_encoding:
        kwd.append(enum("ENCODING_OPTION", "ENCODING_OPTION.NO_ENCODING"))
    return struct_("KEY_BLOCK", fmt(format_name), data("KEY_VALUE", wrap(kek, plain)),
                   alg(algorithm), integer("CRYPTOGRAPHIC_LENGTH", length),
                   struct_("KEY_WRAPPING_DATA", *kwd))


def material_bytes(material_item):
    """The value of a Byte String Key Material item."""
    n = struct.unpack(">I", material_item[4:8])[0]
    return material_item[8:8 + n]


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, check=True, capture_output=True).stdout


class Keys:
    def __init__(self, tmp):
        self.tmp = tmp

    def path(self, name):
        return os.path.join(self.tmp, name)

    def gen(self, name, *opts):
        openssl("genpkey", *opts, "-out", self.path(name))
        return self.path(name)

    def der(self, pem, *args):
        return openssl(*args, "-in", pem, "-outform", "DER")

    def cert(self, key_pem, subject, san):
        return openssl("req", "-x509", "-new", "-key", key_pem, "-subj", subject, "-days", "30",
                       "-addext", "subjectAltName=" + san, "-outform", "DER")


def transparent_rsa(priv, public_only=False):
    n = priv.private_numbers()
    pub = n.public_numbers
    if public_only:
        return struct_("KEY_MATERIAL", bigint("MODULUS", pub.n), bigint("PUBLIC_EXPONENT", pub.e))
    return struct_("KEY_MATERIAL", bigint("MODULUS", pub.n), bigint("PRIVATE_EXPONENT", n.d),
                   bigint("PUBLIC_EXPONENT", pub.e), bigint("P", n.p), bigint("Q", n.q),
                   bigint("PRIME_EXPONENT_P", n.dmp1), bigint("PRIME_EXPONENT_Q", n.dmq1),
                   bigint("CRT_COEFFICIENT", n.iqmp))


def transparent_ec(priv, curve, public_only=False):
    c = enum("RECOMMENDED_CURVE", "RECOMMENDED_CURVE." + curve)
    if public_only:
        q = priv.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
        return struct_("KEY_MATERIAL", c, data("Q_STRING", q))
    return struct_("KEY_MATERIAL", c, bigint("D", priv.private_numbers().private_value))


def main():
    seeds = []
    tmp = tempfile.mkdtemp(prefix="kmsd-keyformat-")
    try:
        k = Keys(tmp)
        rsa1k = k.gen("rsa1k.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024")
        rsa2k = k.gen("rsa2k.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        rsa3p = k.gen("rsa3p.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                      "-pkeyopt", "rsa_keygen_primes:3")
        ecs = {c: k.gen(f"{c}.pem", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{g}")
               for c, g in (("P_256", "P-256"), ("P_384", "P-384"), ("P_521", "P-521"))}
        k1 = k.gen("k1.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1")
        ed = k.gen("ed.pem", "-algorithm", "ED25519")

        # DER keys, one per format.
        # `openssl pkey` writes a multi-prime RSA key as PKCS#1; pkcs8 -topk8
        # always writes PKCS#8.
        pkcs8 = ("pkcs8", "-topk8", "-nocrypt")
        for pem in (rsa1k, rsa2k, rsa3p):
            seeds.append(bytes([PKCS1_PRIV]) + k.der(pem, "rsa", "-traditional"))
            seeds.append(bytes([PKCS8]) + k.der(pem, *pkcs8))
        seeds.append(bytes([PKCS1_PUB]) + k.der(rsa1k, "rsa", "-RSAPublicKey_out"))
        seeds.append(bytes([SPKI]) + k.der(rsa1k, "pkey", "-pubout"))
        for pem in list(ecs.values()) + [k1]:
            seeds.append(bytes([PKCS8]) + k.der(pem, *pkcs8))
            seeds.append(bytes([SEC1]) + k.der(pem, "ec"))
            seeds.append(bytes([SPKI]) + k.der(pem, "pkey", "-pubout"))
        p256 = ecs["P_256"]
        seeds.append(bytes([SEC1]) + k.der(p256, "ec", "-conv_form", "compressed"))
        seeds.append(bytes([SEC1]) + k.der(p256, "ec", "-no_public"))
        seeds.append(bytes([SEC1]) + k.der(p256, "ec", "-param_enc", "explicit"))
        seeds.append(bytes([SPKI]) + k.der(p256, "ec", "-pubout", "-conv_form", "compressed"))
        seeds.append(bytes([PKCS8]) + k.der(ed, *pkcs8))
        seeds.append(bytes([SPKI]) + k.der(ed, "pkey", "-pubout"))

        # Certificates.
        cert_rsa = k.cert(rsa1k, "/CN=kmsd fuzz/O=Example/C=DE",
                          "DNS:kms.example,email:ops@example.org,URI:https://kms.example/")
        cert_ec = k.cert(p256, "/CN=ec fuzz", "DNS:ec.example")
        seeds += [bytes([CERT]) + cert_rsa, bytes([CERT]) + cert_ec]

        # Transparent Key Material (mode 7) and full Register objects (mode 6).
        load = serialization.load_pem_private_key
        rsa = load(open(rsa1k, "rb").read(), None)
        ec = load(open(p256, "rb").read(), None)
        t_rsa, t_rsa_pub = transparent_rsa(rsa), transparent_rsa(rsa, public_only=True)
        t_ec, t_ec_pub = transparent_ec(ec, "P_256"), transparent_ec(ec, "P_256", public_only=True)
        seeds += [bytes([TRANSPARENT, T_RSA_PRIV]) + t_rsa,
                  bytes([TRANSPARENT, T_RSA_PUB]) + t_rsa_pub,
                  bytes([TRANSPARENT, T_ECDSA_PRIV]) + t_ec,
                  bytes([TRANSPARENT, T_EC_PUB]) + t_ec_pub]

        aes = bytes(range(0x40, 0x60))
        objects = [
            struct_("SYMMETRIC_KEY", key_block("RAW", data("KEY_MATERIAL", aes), "AES", 256)),
            struct_("SYMMETRIC_KEY", key_block("TRANSPARENT_SYMMETRIC_KEY",
                                               struct_("KEY_MATERIAL", data("KEY", aes[:16])),
                                               "AES", 128)),
            struct_("SYMMETRIC_KEY", key_block("RAW", data("KEY_MATERIAL", aes[:24]),
                                               "TRIPLE_DES", 192)),
            struct_("SYMMETRIC_KEY", key_block("OPAQUE", data("KEY_MATERIAL", aes[:20]),
                                               "HMAC_SHA256", 160)),
            struct_("SECRET_DATA", enum("SECRET_DATA_TYPE", "SECRET_DATA_TYPE.PASSWORD"),
                    key_block("OPAQUE", data("KEY_MATERIAL", b"correct horse battery staple"))),
            struct_("OPAQUE_OBJECT", enum("OPAQUE_DATA_TYPE", "OPAQUE_DATA_TYPE.NONE"),
                    data("OPAQUE_DATA_VALUE", b"opaque bytes")),
            struct_("TEMPLATE",
                    struct_("ATTRIBUTE", text("ATTRIBUTE_NAME", "Cryptographic Algorithm"),
                            enum("ATTRIBUTE_VALUE", "CRYPTOGRAPHIC_ALGORITHM.AES")),
                    struct_("ATTRIBUTE", text("ATTRIBUTE_NAME", "Cryptographic Length"),
                            integer("ATTRIBUTE_VALUE", 256))),
            struct_("PRIVATE_KEY", key_block("PKCS_1", data("KEY_MATERIAL",
                                                             k.der(rsa1k, "rsa", "-traditional")),
                                             "RSA", 1024)),
            struct_("PRIVATE_KEY", key_block("TRANSPARENT_RSA_PRIVATE_KEY", t_rsa, "RSA", 1024)),
            struct_("PRIVATE_KEY", key_block("EC_PRIVATE_KEY",
                                             data("KEY_MATERIAL", k.der(p256, "ec")), "ECDSA",
                                             256)),
            struct_("PUBLIC_KEY", key_block("TRANSPARENT_ECDSA_PUBLIC_KEY", t_ec_pub, "ECDSA",
                                            256)),
            struct_("PUBLIC_KEY", key_block("X_509", data("KEY_MATERIAL",
                                                           k.der(rsa1k, "pkey", "-pubout")))),
            struct_("CERTIFICATE", enum("CERTIFICATE_TYPE", "CERTIFICATE_TYPE.X_509"),
                    data("CERTIFICATE_VALUE", cert_ec)),
            struct_("SYMMETRIC_KEY", wrapped_key_block("RAW", data("KEY_MATERIAL", aes), "AES", 256,
                                                       "kek", "NIST_KEY_WRAP", False)),
            struct_("SYMMETRIC_KEY", wrapped_key_block("RAW", data("KEY_MATERIAL", aes[:16]), "AES",
                                                       128, "kek16", "AES_KEY_WRAP_PADDING",
                                                       True)),
            struct_("PRIVATE_KEY", wrapped_key_block("PKCS_8", data("KEY_MATERIAL",
                                                                     k.der(p256, *pkcs8)),
                                                     "ECDSA", 256, "kek", "AES_KEY_WRAP_PADDING",
                                                     False)),
        ]
        seeds += [bytes([OBJECT]) + o for o in objects]

        # Raw symmetric material (mode 8) and unwrapping (mode 9).
        seeds += [bytes([RAW, 1]) + aes, bytes([RAW, 2]) + aes[:24], bytes([RAW, 4]) + aes[:20],
                  bytes([RAW, 0x80]) + b"a password"]
        seeds += [bytes([UNWRAP, 2]) + aes_key_wrap(KEK, aes),
                  bytes([UNWRAP, 0x10]) + aes_key_wrap_with_padding(KEK[:16], b"twenty bytes of key!")]
    finally:
        shutil.rmtree(tmp)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for s in seeds:
        with open(os.path.join(OUT, hashlib.sha1(s).hexdigest()), "wb") as f:
            f.write(s)
    print(len(seeds), "files in", OUT, sum(len(s) for s in seeds), "bytes")


if __name__ == "__main__":
    main()
