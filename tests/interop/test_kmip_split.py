"""tests/interop/test_kmip_split.py: Split Key objects and Create / Join Split Key
through a real kmsd.

PyKMIP's client registers and gets Split Key objects; it has no Create or
Join Split Key, so those requests are raw TTLV (the harness's encoder). A
key made and read with PyKMIP is split into three parts, any two of which
join to a key with the same bytes.
"""
import os

import kmsd_harness as h

OP_CREATE_SPLIT_KEY, OP_JOIN_SPLIT_KEY = 0x28, 0x29
T_OBJECT_TYPE, T_PARTS, T_THRESHOLD, T_METHOD = 0x420057, 0x42008B, 0x42008C, 0x42008A
SYMMETRIC_KEY, GF_2_8, SUCCESS = 2, 4, 0


def call(k, op, payload):
    resp = h.decode(k.send_ttlv(h.request(h.batch_item(op, payload), minor=2)))
    return h.find_all(resp, "ResultStatus")[0], h.find_all(resp, "UniqueIdentifier")


def test_register_and_get_a_split_key(module_pykmip):
    from kmip.core import enums
    from kmip.pie import objects
    part = os.urandom(32)
    uid = module_pykmip.register(objects.SplitKey(
        cryptographic_algorithm=enums.CryptographicAlgorithm.AES, cryptographic_length=256,
        key_value=part, split_key_parts=3, key_part_identifier=2, split_key_threshold=2,
        split_key_method=enums.SplitKeyMethod.POLYNOMIAL_SHARING_GF_2_8))
    got = module_pykmip.get(uid)
    assert isinstance(got, objects.SplitKey)
    assert got.value == part
    assert (got.split_key_parts, got.key_part_identifier, got.split_key_threshold) == (3, 2, 2)
    assert got.split_key_method == enums.SplitKeyMethod.POLYNOMIAL_SHARING_GF_2_8


def test_split_and_join(module_kmsd, module_pykmip):
    from kmip.core import enums
    key = module_pykmip.create(enums.CryptographicAlgorithm.AES, 256)
    st, parts = call(module_kmsd, OP_CREATE_SPLIT_KEY, [
        h.item(T_OBJECT_TYPE, h.ENUM, SYMMETRIC_KEY), h.item("UniqueIdentifier", h.TEXT, key),
        h.item(T_PARTS, h.INT, 3), h.item(T_THRESHOLD, h.INT, 2), h.item(T_METHOD, h.ENUM, GF_2_8)])
    assert st == SUCCESS and len(parts) == 3
    st, joined = call(module_kmsd, OP_JOIN_SPLIT_KEY, [
        h.item(T_OBJECT_TYPE, h.ENUM, SYMMETRIC_KEY),
        h.item("UniqueIdentifier", h.TEXT, parts[2]), h.item("UniqueIdentifier", h.TEXT, parts[0])])
    assert st == SUCCESS
    assert module_pykmip.get(joined[0]).value == module_pykmip.get(key).value
    # One part alone is not enough.
    st, _ = call(module_kmsd, OP_JOIN_SPLIT_KEY, [
        h.item(T_OBJECT_TYPE, h.ENUM, SYMMETRIC_KEY), h.item("UniqueIdentifier", h.TEXT, parts[1])])
    assert st != SUCCESS
