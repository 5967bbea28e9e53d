"""tests/interop/test_kmip_crypto_services.py: the cryptographic services
through PyKMIP's ProxyKmipClient (a client we did not write) against a real
kmsd over mutual TLS, with every result checked by an independent
implementation (the `cryptography` package, hashlib, hmac):

- Encrypt/Decrypt: AES-256 CBC (server-made IV; PKCS5 and ANSI X9.23
  padding), CTR and ECB, Triple DES,
  RSA OAEP and PKCS#1 v1.5 -- ciphertexts decrypted locally with the key
  read back by Get, and local ciphertexts decrypted by kmsd;
- Sign/Signature Verify: RSA PKCS#1 v1.5 and PSS, ECDSA P-256 and P-384,
  signatures verified locally; kmsd's verdicts Valid and Invalid;
- MAC: HMAC-SHA256/512 against hmac, AES-CMAC against cryptography;
- Derive Key: PBKDF2, HMAC, ENCRYPT and SP 800-108 counter mode, derived
  bytes read back by Get and compared with local derivations;
- the state and usage-mask rules as PyKMIP sees them (Permission Denied);
- what PyKMIP's client cannot send (Hash, RNG Retrieve/Seed, MAC Verify,
  GCM tags, streams) as hand-built TTLV over the same TLS port.
"""
import hashlib
import hmac
import os
import struct
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kmsd_harness as h  # noqa: E402

from cryptography.hazmat.primitives import cmac, hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives import padding as sympadding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from cryptography.hazmat.primitives.kdf.kbkdf import (  # noqa: E402
    KBKDFHMAC, CounterLocation, Mode)
from kmip.core import enums  # noqa: E402
from kmip.pie import exceptions, objects  # noqa: E402

E = enums
A = E.CryptographicAlgorithm
U = E.CryptographicUsageMask


@pytest.fixture(scope="module")
def server(module_kmsd):
    return module_kmsd


@pytest.fixture(scope="module")
def client(module_pykmip):
    return module_pykmip


def sym_key(client, alg, bits, masks):
    uid = client.create(alg, bits, cryptographic_usage_mask=masks)
    client.activate(uid)
    return uid, client.get(uid).value


def key_pair(client, alg, bits, pub_masks, priv_masks):
    pub, priv = client.create_key_pair(alg, bits, public_usage_mask=pub_masks,
                                       private_usage_mask=priv_masks)
    client.activate(pub)
    client.activate(priv)
    return pub, priv


def reason_of(excinfo):
    return excinfo.value.reason


# ------------------------------------------------------- Encrypt, Decrypt
def test_aes_cbc_server_iv(client):
    uid, key = sym_key(client, A.AES, 256, [U.ENCRYPT, U.DECRYPT])
    msg = b"kmsd encrypts this message; PKCS5 pads it"
    params = {"block_cipher_mode": E.BlockCipherMode.CBC,
              "padding_method": E.PaddingMethod.PKCS5,
              "cryptographic_algorithm": A.AES}
    ct, iv = client.encrypt(msg, uid=uid, cryptographic_parameters=params)
    assert iv is not None and len(iv) == 16
    assert len(ct) == 48
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = d.update(ct) + d.finalize()
    pad = 16 - len(msg) % 16
    assert padded[:len(msg)] == msg and padded[len(msg):] == bytes([pad]) * pad
    assert client.decrypt(ct, uid=uid, cryptographic_parameters=params, iv_counter_nonce=iv) == msg
    # A ciphertext made here decrypts there.
    iv2 = os.urandom(16)
    e = Cipher(algorithms.AES(key), modes.CBC(iv2)).encryptor()
    local = e.update(b"sixteen byte msg" + bytes([16]) * 16) + e.finalize()
    assert client.decrypt(local, uid=uid, cryptographic_parameters=params,
                          iv_counter_nonce=iv2) == b"sixteen byte msg"


def test_aes_ctr_ecb_and_3des(client):
    uid, key = sym_key(client, A.AES, 128, [U.ENCRYPT, U.DECRYPT])
    nonce = os.urandom(16)
    msg = os.urandom(100)
    ct, iv = client.encrypt(msg, uid=uid, iv_counter_nonce=nonce,
                            cryptographic_parameters={"block_cipher_mode": E.BlockCipherMode.CTR})
    assert iv is None  # the client's own IV is not sent back
    e = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    assert ct == e.update(msg) + e.finalize()
    block = os.urandom(32)
    ct, _ = client.encrypt(block, uid=uid, cryptographic_parameters={
        "block_cipher_mode": E.BlockCipherMode.ECB, "padding_method": E.PaddingMethod.NONE})
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    assert ct == e.update(block) + e.finalize()
    # ANSI X9.23 padding, unpadded here with cryptography's ANSIX923.
    x923 = {"block_cipher_mode": E.BlockCipherMode.CBC, "padding_method": E.PaddingMethod.ANSI_X923}
    ct, iv = client.encrypt(b"ansi x9.23 padded", uid=uid, cryptographic_parameters=x923)
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    u = sympadding.ANSIX923(128).unpadder()
    assert u.update(d.update(ct) + d.finalize()) + u.finalize() == b"ansi x9.23 padded"
    assert client.decrypt(ct, uid=uid, cryptographic_parameters=x923,
                          iv_counter_nonce=iv) == b"ansi x9.23 padded"
    # Triple DES, three keys, CBC.
    tuid, tkey = sym_key(client, A.TRIPLE_DES, 192, [U.ENCRYPT, U.DECRYPT])
    params = {"block_cipher_mode": E.BlockCipherMode.CBC, "padding_method": E.PaddingMethod.PKCS5}
    ct, iv = client.encrypt(b"triple des", uid=tuid, cryptographic_parameters=params)
    assert len(iv) == 8
    assert client.decrypt(ct, uid=tuid, cryptographic_parameters=params,
                          iv_counter_nonce=iv) == b"triple des"


def test_rsa_oaep_pkcs1(client):
    pub, priv = key_pair(client, A.RSA, 2048, [U.ENCRYPT, U.VERIFY], [U.DECRYPT, U.SIGN])
    sk = serialization.load_der_private_key(client.get(priv).value, password=None)
    oaep = {"cryptographic_algorithm": A.RSA, "padding_method": E.PaddingMethod.OAEP,
            "hashing_algorithm": E.HashingAlgorithm.SHA_256}
    ct, _ = client.encrypt(b"rsa oaep", uid=pub, cryptographic_parameters=oaep)
    assert sk.decrypt(ct, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                       algorithm=hashes.SHA256(), label=None)) == b"rsa oaep"
    local = sk.public_key().encrypt(b"from here", padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    assert client.decrypt(local, uid=priv, cryptographic_parameters=oaep) == b"from here"
    p15 = {"cryptographic_algorithm": A.RSA, "padding_method": E.PaddingMethod.PKCS1v15}
    ct, _ = client.encrypt(b"rsa pkcs1", uid=pub, cryptographic_parameters=p15)
    assert sk.decrypt(ct, padding.PKCS1v15()) == b"rsa pkcs1"
    # The public key cannot decrypt (wrong object type).
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.decrypt(ct, uid=pub, cryptographic_parameters=p15)
    assert reason_of(ei) == E.ResultReason.ILLEGAL_OPERATION


# ------------------------------------------------------------- Signatures
def test_rsa_sign_pkcs1_pss(client):
    pub, priv = key_pair(client, A.RSA, 2048, [U.VERIFY], [U.SIGN])
    pk = serialization.load_der_private_key(client.get(priv).value, password=None).public_key()
    msg = b"signed by kmsd"
    p15 = {"cryptographic_algorithm": A.RSA, "padding_method": E.PaddingMethod.PKCS1v15,
           "hashing_algorithm": E.HashingAlgorithm.SHA_256}
    sig = client.sign(msg, uid=priv, cryptographic_parameters=p15)
    pk.verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())
    assert client.signature_verify(msg, sig, uid=pub, cryptographic_parameters=p15) == \
        E.ValidityIndicator.VALID
    assert client.signature_verify(msg + b"!", sig, uid=pub, cryptographic_parameters=p15) == \
        E.ValidityIndicator.INVALID
    pss = {"cryptographic_algorithm": A.RSA, "padding_method": E.PaddingMethod.PSS,
           "hashing_algorithm": E.HashingAlgorithm.SHA_384}
    sig = client.sign(msg, uid=priv, cryptographic_parameters=pss)
    pk.verify(sig, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
              hashes.SHA384())
    assert client.signature_verify(msg, sig, uid=pub, cryptographic_parameters=pss) == \
        E.ValidityIndicator.VALID


@pytest.mark.parametrize("bits,curve,hashname", [(256, ec.SECP256R1, "SHA256"),
                                                 (384, ec.SECP384R1, "SHA384")])
def test_ecdsa_sign(client, bits, curve, hashname):
    pub, priv = key_pair(client, A.ECDSA, bits, [U.VERIFY], [U.SIGN])
    pk = serialization.load_der_public_key(client.get(pub).value)
    assert isinstance(pk.curve, curve)
    params = {"digital_signature_algorithm":
              getattr(E.DigitalSignatureAlgorithm, "ECDSA_WITH_" + hashname)}
    sig = client.sign(b"ecdsa message", uid=priv, cryptographic_parameters=params)
    pk.verify(sig, b"ecdsa message", ec.ECDSA(getattr(hashes, hashname)()))
    assert client.signature_verify(b"ecdsa message", sig, uid=pub,
                                   cryptographic_parameters=params) == E.ValidityIndicator.VALID


# ------------------------------------------------------------------- MAC
def test_hmac_and_cmac(client):
    for alg, bits, fn in [(A.HMAC_SHA256, 256, hashlib.sha256), (A.HMAC_SHA512, 512, hashlib.sha512)]:
        uid, key = sym_key(client, alg, bits, [U.MAC_GENERATE, U.MAC_VERIFY])
        got_uid, mac = client.mac(b"mac me", uid=uid, algorithm=alg)
        assert got_uid == uid
        assert mac == hmac.new(key, b"mac me", fn).digest()
    uid, key = sym_key(client, A.AES, 128, [U.MAC_GENERATE])
    _, mac = client.mac(b"cmac me", uid=uid, algorithm=A.AES)
    c = cmac.CMAC(algorithms.AES(key))
    c.update(b"cmac me")
    assert mac == c.finalize()
    # An HMAC asked of an AES key is refused.
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.mac(b"x", uid=uid, algorithm=A.HMAC_SHA256)
    assert reason_of(ei) == E.ResultReason.INVALID_FIELD


# ------------------------------------------------------------ Derive Key
def derive(client, base, method, params, alg=A.AES, bits=256):
    uid = client.derive_key(E.ObjectType.SYMMETRIC_KEY, [base], method, params,
                            cryptographic_algorithm=alg, cryptographic_length=bits)
    return uid, client.get(uid).value


def test_derive_key(client):
    pw = objects.SecretData(b"correct horse", E.SecretDataType.PASSWORD, masks=[U.DERIVE_KEY])
    pw_uid = client.register(pw)
    client.activate(pw_uid)
    uid, key = derive(client, pw_uid, E.DerivationMethod.PBKDF2, {
        "cryptographic_parameters": {"hashing_algorithm": E.HashingAlgorithm.SHA_256},
        "salt": b"saltsalt", "iteration_count": 1000})
    assert key == hashlib.pbkdf2_hmac("sha256", b"correct horse", b"saltsalt", 1000, 32)
    assert len(client.get(uid).value) == 32

    base, bkey = sym_key(client, A.HMAC_SHA256, 256, [U.DERIVE_KEY])
    _, key = derive(client, base, E.DerivationMethod.HMAC, {"derivation_data": b"context"})
    assert key == hmac.new(bkey, b"context", hashlib.sha256).digest()
    _, key = derive(client, base, E.DerivationMethod.NIST800_108_C, {
        "cryptographic_parameters": {"hashing_algorithm": E.HashingAlgorithm.SHA_256},
        "derivation_data": b"fixed input"}, bits=128)
    kdf = KBKDFHMAC(algorithm=hashes.SHA256(), mode=Mode.CounterMode, length=16, rlen=4, llen=None,
                    location=CounterLocation.BeforeFixed, label=None, context=None,
                    fixed=b"fixed input")
    assert key == kdf.derive(bkey)

    ebase, ekey = sym_key(client, A.AES, 256, [U.DERIVE_KEY])
    data = os.urandom(32)
    _, key = derive(client, ebase, E.DerivationMethod.ENCRYPT, {
        "cryptographic_parameters": {"block_cipher_mode": E.BlockCipherMode.ECB,
                                     "padding_method": E.PaddingMethod.NONE},
        "derivation_data": data})
    e = Cipher(algorithms.AES(ekey), modes.ECB()).encryptor()
    assert key == e.update(data) + e.finalize()
    # A base without Derive Key in its mask.
    nobase, _ = sym_key(client, A.AES, 256, [U.ENCRYPT])
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        derive(client, nobase, E.DerivationMethod.ENCRYPT, {"derivation_data": data})
    assert reason_of(ei) == E.ResultReason.PERMISSION_DENIED


# ------------------------------------------------------------- the rules
def test_state_and_mask_rules(client):
    params = {"block_cipher_mode": E.BlockCipherMode.CBC, "padding_method": E.PaddingMethod.PKCS5}
    pre = client.create(A.AES, 128, cryptographic_usage_mask=[U.ENCRYPT, U.DECRYPT])
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.encrypt(b"x", uid=pre, cryptographic_parameters=params)
    assert reason_of(ei) == E.ResultReason.PERMISSION_DENIED
    uid, _ = sym_key(client, A.AES, 128, [U.ENCRYPT, U.DECRYPT])
    ct, iv = client.encrypt(b"before revoke", uid=uid, cryptographic_parameters=params)
    client.revoke(E.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.encrypt(b"x", uid=uid, cryptographic_parameters=params)
    assert reason_of(ei) == E.ResultReason.PERMISSION_DENIED
    assert client.decrypt(ct, uid=uid, cryptographic_parameters=params,
                          iv_counter_nonce=iv) == b"before revoke"
    # PyKMIP's create always adds Encrypt and Decrypt to the mask, so the
    # mask rule is shown with registered Secret Data that may only derive.
    sd = client.register(objects.SecretData(b"derive only", E.SecretDataType.PASSWORD,
                                            masks=[U.DERIVE_KEY]))
    client.activate(sd)
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.mac(b"x", uid=sd, algorithm=A.HMAC_SHA256)
    assert reason_of(ei) == E.ResultReason.PERMISSION_DENIED


# ------------------------------------------- what PyKMIP's client lacks
OP_ENCRYPT, OP_DECRYPT, OP_MAC_VERIFY, OP_RNG_RETRIEVE, OP_RNG_SEED, OP_HASH = \
    0x1F, 0x20, 0x24, 0x25, 0x26, 0x27
T_CP, T_MODE, T_HASH, T_DATA, T_IV, T_MACDATA = 0x42002B, 0x420011, 0x420038, 0x4200C2, 0x42003D, 0x4200C6
T_DLEN, T_CORR, T_INIT, T_FINAL, T_VALID = 0x4200C4, 0x4200D6, 0x4200D7, 0x4200D8, 0x42009B
T_AAD, T_TAG = 0x4200FE, 0x4200FF


def call(server, op, payload):
    resp = h.decode(server.send_ttlv(h.request(h.batch_item(op, payload), minor=4)))
    assert h.find_all(resp, "ResultStatus") == [h.STATUS_SUCCESS], resp
    return resp


def one(resp, tag):
    vals = h.find_all(resp, tag)
    assert len(vals) == 1, resp
    return vals[0]


def test_raw_hash_stream_rng_mac_verify_gcm(server, client):
    cp = h.item(T_CP, h.STRUCT, [h.item(T_HASH, h.ENUM, E.HashingAlgorithm.SHA_256.value)])
    r = call(server, OP_HASH, [cp, h.item(T_DATA, h.BYTES, b"part one, "), h.item(T_INIT, h.BOOL, True)])
    corr = one(r, T_CORR)
    call(server, OP_HASH, [h.item(T_CORR, h.BYTES, corr), h.item(T_DATA, h.BYTES, b"part two, ")])
    r = call(server, OP_HASH, [h.item(T_CORR, h.BYTES, corr), h.item(T_DATA, h.BYTES, b"end"),
                               h.item(T_FINAL, h.BOOL, True)])
    assert one(r, T_DATA) == hashlib.sha256(b"part one, part two, end").digest()

    r = call(server, OP_RNG_RETRIEVE, [h.item(T_DLEN, h.INT, 64)])
    assert len(one(r, T_DATA)) == 64
    r = call(server, OP_RNG_SEED, [h.item(T_DATA, h.BYTES, os.urandom(32))])
    assert one(r, T_DLEN) == 32

    uid, key = sym_key(client, A.HMAC_SHA256, 256, [U.MAC_GENERATE, U.MAC_VERIFY])
    tag = hmac.new(key, b"verify me", hashlib.sha256).digest()
    for data, want in [(b"verify me", 1), (b"verify mE", 2)]:
        r = call(server, OP_MAC_VERIFY, [h.item("UniqueIdentifier", h.TEXT, uid),
                                         h.item(T_DATA, h.BYTES, data),
                                         h.item(T_MACDATA, h.BYTES, tag)])
        assert one(r, T_VALID) == want

    # AES-256-GCM with a tag, decrypted here.
    guid, gkey = sym_key(client, A.AES, 256, [U.ENCRYPT, U.DECRYPT])
    gcp = h.item(T_CP, h.STRUCT, [h.item(T_MODE, h.ENUM, E.BlockCipherMode.GCM.value)])
    r = call(server, OP_ENCRYPT, [h.item("UniqueIdentifier", h.TEXT, guid), gcp,
                                  h.item(T_DATA, h.BYTES, b"gcm over kmip"),
                                  h.item(T_AAD, h.BYTES, b"header")])
    iv, ct, tg = one(r, T_IV), one(r, T_DATA), one(r, T_TAG)
    d = Cipher(algorithms.AES(gkey), modes.GCM(iv, tg)).decryptor()
    d.authenticate_additional_data(b"header")
    assert d.update(ct) + d.finalize() == b"gcm over kmip"
    r = call(server, OP_DECRYPT, [h.item("UniqueIdentifier", h.TEXT, guid), gcp,
                                  h.item(T_DATA, h.BYTES, ct), h.item(T_IV, h.BYTES, iv),
                                  h.item(T_AAD, h.BYTES, b"header"), h.item(T_TAG, h.BYTES, tg)])
    assert one(r, T_DATA) == b"gcm over kmip"


def test_stream_limit_from_config(kmsd_factory):
    k = kmsd_factory({"limits": {"crypto_streams_per_client": 1,
                                 "crypto_stream_idle_timeout": "30s"}})
    cp = h.item(T_CP, h.STRUCT, [h.item(T_HASH, h.ENUM, E.HashingAlgorithm.SHA_256.value)])
    req = h.request(h.batch_item(OP_HASH, [cp, h.item(T_INIT, h.BOOL, True)]), minor=4)
    assert h.statuses(k.send_ttlv(req)) == [h.STATUS_SUCCESS]
    resp = h.decode(k.send_ttlv(req))
    assert h.find_all(resp, "ResultStatus") == [h.STATUS_FAILED]
    assert h.find_all(resp, "ResultReason") == [E.ResultReason.PERMISSION_DENIED.value]


def test_stream_limit_per_tenant_from_config(kmsd_factory):
    """limits.crypto_streams_per_tenant bounds the streams of all a tenant's
    identities together, below the per-client limit here."""
    k = kmsd_factory({"limits": {"crypto_streams_per_client": 5, "crypto_streams_per_tenant": 2}})
    cp = h.item(T_CP, h.STRUCT, [h.item(T_HASH, h.ENUM, E.HashingAlgorithm.SHA_256.value)])
    req = h.request(h.batch_item(OP_HASH, [cp, h.item(T_INIT, h.BOOL, True)]), minor=4)
    for _ in range(2):
        assert h.statuses(k.send_ttlv(req)) == [h.STATUS_SUCCESS]
    resp = h.decode(k.send_ttlv(req))
    assert h.find_all(resp, "ResultReason") == [E.ResultReason.PERMISSION_DENIED.value]
    assert "2 per tenant" in h.find_all(resp, "ResultMessage")[0]
