"""tests/interop/test_kmip_crypto.py: key pairs, Register, Get formats and
Re-key through PyKMIP (a client we did not write) against a real kmsd.

- Create Key Pair RSA-2048 and EC P-256; the private key signs and the
  public key verifies (with the `cryptography` package), and Get of the
  RSA private key in PKCS#1 and PKCS#8 gives the same key.
- Register of a symmetric key, an X.509 certificate, secret data and an
  opaque object; Get returns identical bytes.
- Re-key gives a new key of the same algorithm and length; Re-key Key Pair
  a new linked pair.
- Get wrapped with an AES key-encryption key (RFC 3394; sent as raw TTLV
  because PyKMIP cannot decode a wrapped Key Value), unwrapped here.
- Links (read with a raw Get Attributes: PyKMIP cannot decode Link values).
"""
import base64
import datetime
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kmsd_harness  # noqa: E402  (the server engineer's harness)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from kmip.core import enums  # noqa: E402
from kmip.core.misc import KeyFormatType  # noqa: E402
from kmip.pie import exceptions, objects  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with kmsd_harness.server() as k:
        yield k


@pytest.fixture(scope="module")
def client(server):
    c = server.pykmip_client()
    try:
        yield c
    finally:
        c.close()


OP_GET_ATTRIBUTES = 0x0B
TAG_ATTRIBUTE_NAME = 0x42000A
TAG_LINK_TYPE = 0x42004B
TAG_LINKED_OBJECT_IDENTIFIER = 0x42004C


def _walk(items):
    for tag, typ, val in items:
        yield tag, typ, val
        if typ == kmsd_harness.STRUCT:
            yield from _walk(val)


def links_of(server, uid):
    """(Link Type, Linked Object Identifier) pairs of an object, read with a
    hand-built Get Attributes (PyKMIP cannot decode Link values)."""
    h = kmsd_harness
    req = h.request(h.batch_item(OP_GET_ATTRIBUTES, [
        h.item("UniqueIdentifier", h.TEXT, uid),
        h.item(TAG_ATTRIBUTE_NAME, h.TEXT, "Link")]))
    resp = h.decode(server.send_ttlv(req))
    status = [v for t, _, v in _walk(resp) if t == h.TAG["ResultStatus"]]
    assert status == [h.STATUS_SUCCESS]
    out = []
    for tag, typ, val in _walk(resp):
        if typ == h.STRUCT and any(t == TAG_LINK_TYPE for t, _, _ in val):
            d = {t: v for t, _, v in val}
            out.append((d[TAG_LINK_TYPE], d[TAG_LINKED_OBJECT_IDENTIFIER]))
    return out


def test_create_key_pair_rsa_sign_verify(server, client):
    pub_id, priv_id = client.create_key_pair(
        enums.CryptographicAlgorithm.RSA, 2048,
        public_usage_mask=[enums.CryptographicUsageMask.VERIFY],
        private_usage_mask=[enums.CryptographicUsageMask.SIGN])
    assert pub_id != priv_id
    priv = client.get(priv_id)
    pub = client.get(pub_id)
    assert isinstance(priv, objects.PrivateKey)
    assert isinstance(pub, objects.PublicKey)
    assert priv.cryptographic_algorithm == enums.CryptographicAlgorithm.RSA
    assert priv.cryptographic_length == 2048
    # Default for an RSA key pair: PKCS#1 for both halves.
    assert priv.key_format_type == enums.KeyFormatType.PKCS_1
    assert pub.key_format_type == enums.KeyFormatType.PKCS_1
    sk = serialization.load_der_private_key(priv.value, password=None)
    pk = _load_pkcs1_public(pub.value)
    assert sk.key_size == 2048
    sig = sk.sign(b"kmsd interop", padding.PKCS1v15(), hashes.SHA256())
    pk.verify(sig, b"kmsd interop", padding.PKCS1v15(), hashes.SHA256())
    assert sk.public_key().public_numbers() == pk.public_numbers()
    # Each half links to the other.
    assert (enums.LinkType.PUBLIC_KEY_LINK.value, pub_id) in links_of(server, priv_id)
    assert (enums.LinkType.PRIVATE_KEY_LINK.value, priv_id) in links_of(server, pub_id)


def _load_pkcs1_public(der):
    """A PKCS#1 RSAPublicKey through cryptography's "RSA PUBLIC KEY" PEM reader."""
    pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der) + \
        b"-----END RSA PUBLIC KEY-----\n"
    return serialization.load_pem_public_key(pem)


def test_get_rsa_private_pkcs1_and_pkcs8(client):
    _, priv_id = client.create_key_pair(enums.CryptographicAlgorithm.RSA, 2048)
    r1 = client.proxy.get(priv_id, key_format_type=KeyFormatType(enums.KeyFormatType.PKCS_1))
    r8 = client.proxy.get(priv_id, key_format_type=KeyFormatType(enums.KeyFormatType.PKCS_8))
    assert r1.result_status.value == enums.ResultStatus.SUCCESS
    assert r8.result_status.value == enums.ResultStatus.SUCCESS
    kb1 = r1.secret.key_block
    kb8 = r8.secret.key_block
    assert kb1.key_format_type.value == enums.KeyFormatType.PKCS_1
    assert kb8.key_format_type.value == enums.KeyFormatType.PKCS_8
    d1 = kb1.key_value.key_material.value
    d8 = kb8.key_value.key_material.value
    assert d1 != d8
    k1 = serialization.load_der_private_key(d1, password=None)
    k8 = serialization.load_der_private_key(d8, password=None)
    assert k1.private_numbers() == k8.private_numbers()
    # PKCS#8 as OpenSSL writes it, byte for byte.
    assert k1.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) == d8


def test_create_key_pair_ec(client):
    try:
        pub_id, priv_id = client.create_key_pair(enums.CryptographicAlgorithm.ECDSA, 256)
    except exceptions.KmipOperationFailure as e:  # pragma: no cover
        pytest.fail("EC Create Key Pair failed: %s" % e)
    priv = client.get(priv_id)
    pub = client.get(pub_id)
    sk = serialization.load_der_private_key(priv.value, password=None)
    pk = serialization.load_der_public_key(pub.value)
    assert isinstance(sk, ec.EllipticCurvePrivateKey)
    assert sk.curve.name == "secp256r1"
    sig = sk.sign(b"kmsd ec", ec.ECDSA(hashes.SHA256()))
    pk.verify(sig, b"kmsd ec", ec.ECDSA(hashes.SHA256()))


def test_create_key_pair_bad_length(client):
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.create_key_pair(enums.CryptographicAlgorithm.RSA, 1000)
    assert ei.value.reason == enums.ResultReason.INVALID_FIELD


def test_register_symmetric_get_identical(client):
    value = os.urandom(32)
    key = objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, value,
                               [enums.CryptographicUsageMask.ENCRYPT,
                                enums.CryptographicUsageMask.DECRYPT])
    uid = client.register(key)
    got = client.get(uid)
    assert isinstance(got, objects.SymmetricKey)
    assert got.value == value
    assert got.cryptographic_algorithm == enums.CryptographicAlgorithm.AES
    assert got.cryptographic_length == 256


def test_register_symmetric_any_length(client):
    # As PyKMIP's own server: the Key Material is the key, whatever its
    # size under the stated algorithm (a 512-bit HMAC or XTS key registered
    # as AES, a 160-bit one); it comes back byte for byte.
    for bits in (512, 160):
        material = os.urandom(bits // 8)
        uid = client.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, bits,
                                                   material))
        got = client.get(uid)
        assert got.value == material
        assert got.cryptographic_length == bits
        assert got.cryptographic_algorithm == enums.CryptographicAlgorithm.AES


def test_create_other_symmetric_algorithms(client):
    # Keys of ciphers the server does not run are still made and served.
    for alg, bits in ((enums.CryptographicAlgorithm.BLOWFISH, 128),
                      (enums.CryptographicAlgorithm.CAMELLIA, 256),
                      (enums.CryptographicAlgorithm.SKIPJACK, 80)):
        uid = client.create(alg, bits)
        got = client.get(uid)
        assert got.cryptographic_algorithm == alg
        assert len(got.value) * 8 == bits


def _self_signed():
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kmsd interop")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(k, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_register_certificate_get_identical(client):
    der = _self_signed()
    uid = client.register(objects.X509Certificate(der))
    got = client.get(uid)
    assert isinstance(got, objects.X509Certificate)
    assert got.value == der


def test_register_certificate_garbage(client):
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.register(objects.X509Certificate(b"\x30\x03\x02\x01\x00"))
    assert ei.value.reason == enums.ResultReason.INVALID_FIELD


def test_register_secret_data_get_identical(client):
    value = b"s3cr3t passphrase \x00\xff"
    uid = client.register(objects.SecretData(value, enums.SecretDataType.PASSWORD))
    got = client.get(uid)
    assert isinstance(got, objects.SecretData)
    assert got.value == value
    assert got.data_type == enums.SecretDataType.PASSWORD


def test_register_opaque_get_identical(client):
    value = os.urandom(100)
    uid = client.register(objects.OpaqueObject(value, enums.OpaqueDataType.NONE))
    got = client.get(uid)
    assert isinstance(got, objects.OpaqueObject)
    assert got.value == value


def test_rekey(server, client):
    uid = client.create(enums.CryptographicAlgorithm.AES, 256)
    old = client.get(uid)
    new_uid = client.rekey(uid=uid, offset=0)
    assert new_uid and new_uid != uid
    new = client.get(new_uid)
    assert new.cryptographic_algorithm == enums.CryptographicAlgorithm.AES
    assert new.cryptographic_length == 256
    assert new.value != old.value
    # The old key is still there, unchanged.
    assert client.get(uid).value == old.value
    # Links both ways.
    assert (enums.LinkType.REPLACED_OBJECT_LINK.value, uid) in links_of(server, new_uid)
    assert (enums.LinkType.REPLACEMENT_OBJECT_LINK.value, new_uid) in links_of(server, uid)


def test_get_wrapped_with_kek(server, client):
    """PyKMIP cannot decode a wrapped (Byte String) Key Value, so the Get is
    sent by hand; the wrapped bytes are unwrapped here (RFC 3394)."""
    h = kmsd_harness
    kek = os.urandom(16)
    kek_id = client.register(objects.SymmetricKey(
        enums.CryptographicAlgorithm.AES, 128, kek,
        [enums.CryptographicUsageMask.WRAP_KEY, enums.CryptographicUsageMask.UNWRAP_KEY]))
    client.activate(kek_id)
    data = os.urandom(32)
    data_id = client.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, data))

    def wrapped_get(kek_uid):
        kws = h.item(0x420047, h.STRUCT, [
            h.item(0x42009E, h.ENUM, enums.WrappingMethod.ENCRYPT.value),
            h.item(0x420036, h.STRUCT, [
                h.item("UniqueIdentifier", h.TEXT, kek_uid),
                h.item(0x42002B, h.STRUCT, [
                    h.item(0x420011, h.ENUM, enums.BlockCipherMode.NIST_KEY_WRAP.value)]),
            ]),
            h.item(0x4200A3, h.ENUM, enums.EncodingOption.NO_ENCODING.value),
        ])
        req = h.request(h.batch_item(0x0A, [h.item("UniqueIdentifier", h.TEXT, data_id), kws]))
        return list(_walk(h.decode(server.send_ttlv(req))))

    resp = wrapped_get(kek_id)
    assert [v for t, _, v in resp if t == h.TAG["ResultStatus"]] == [h.STATUS_SUCCESS]
    kv = [v for t, typ, v in resp if t == 0x420045]
    assert len(kv) == 1 and isinstance(kv[0], bytes)
    assert len(kv[0]) == 40 and kv[0] != data
    assert aes_key_unwrap(kek, kv[0]) == data
    # The Key Wrapping Data names the KEK.
    assert kek_id in [v for t, _, v in resp if t == h.TAG["UniqueIdentifier"]]

    # A key without Wrap Key in its usage mask cannot wrap.
    weak_id = client.register(objects.SymmetricKey(
        enums.CryptographicAlgorithm.AES, 128, os.urandom(16),
        [enums.CryptographicUsageMask.ENCRYPT]))
    client.activate(weak_id)
    resp = wrapped_get(weak_id)
    assert [v for t, _, v in resp if t == h.TAG["ResultStatus"]] == [h.STATUS_FAILED]


def test_register_private_key_pkcs8_identical(client):
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    uid = client.register(objects.PrivateKey(enums.CryptographicAlgorithm.RSA, 2048, der,
                                             enums.KeyFormatType.PKCS_8))
    got = client.get(uid)
    assert isinstance(got, objects.PrivateKey)
    assert got.key_format_type == enums.KeyFormatType.PKCS_8
    assert got.value == der
    # And the same key as PKCS#1 on request.
    r1 = client.proxy.get(uid, key_format_type=KeyFormatType(enums.KeyFormatType.PKCS_1))
    d1 = r1.secret.key_block.key_value.key_material.value
    assert serialization.load_der_private_key(d1, password=None).private_numbers() == \
        k.private_numbers()


def test_register_private_key_wrong_length(client):
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.register(objects.PrivateKey(enums.CryptographicAlgorithm.RSA, 4096, der,
                                           enums.KeyFormatType.PKCS_8))
    assert ei.value.reason == enums.ResultReason.INVALID_FIELD


def test_rekey_key_pair(server, client):
    pub_id, priv_id = client.create_key_pair(enums.CryptographicAlgorithm.RSA, 2048)
    from kmip.core.attributes import PrivateKeyUniqueIdentifier
    r = client.proxy.rekey_key_pair(private_key_uuid=PrivateKeyUniqueIdentifier(priv_id))
    assert r.result_status.value == enums.ResultStatus.SUCCESS, r.result_message
    npriv, npub = r.private_key_uuid, r.public_key_uuid
    npriv = getattr(npriv, "value", npriv)
    npub = getattr(npub, "value", npub)
    assert npriv not in (priv_id, pub_id) and npub not in (priv_id, pub_id)
    sk = serialization.load_der_private_key(client.get(npriv).value, password=None)
    pk = _load_pkcs1_public(client.get(npub).value)
    assert sk.public_key().public_numbers() == pk.public_numbers()
    old = serialization.load_der_private_key(client.get(priv_id).value, password=None)
    assert old.private_numbers() != sk.private_numbers()
    assert (enums.LinkType.REPLACED_OBJECT_LINK.value, priv_id) in links_of(server, npriv)
    assert (enums.LinkType.PUBLIC_KEY_LINK.value, npub) in links_of(server, npriv)
    assert (enums.LinkType.REPLACEMENT_OBJECT_LINK.value, npub) in links_of(server, pub_id)
