"""tests/interop/test_kmip_pykmip.py: the KMIP operations through PyKMIP
(a client we did not write) against a real kmsd over mutual TLS.

- The vCenter-style flow: Discover Versions; Create AES-256 with a Name and
  a usage mask; Get Attributes for State only and for everything;
  Activate; Get; Locate by Name; Add Attribute x-Vendor-Key-Id (raw TTLV:
  PyKMIP 0.10 has no KMIP 1.x Add Attribute); Revoke; Destroy.
- Every other operation PyKMIP can send: Query, Check, Get Attribute List,
  Locate by several attributes, Register; Archive/Recover, Obtain Lease
  and Get Usage Allocation as raw TTLV (PyKMIP 0.10 cannot decode those
  responses); and the misuse answers (Item Not Found,
  Permission Denied for an Active Destroy, Object Archived).
"""
import os
import struct
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kmsd_harness as H  # noqa: E402

from kmip.core import enums  # noqa: E402
from kmip.core.factories import attributes as attr_factory  # noqa: E402
from kmip.pie import exceptions, objects  # noqa: E402

AF = attr_factory.AttributeFactory()


@pytest.fixture(scope="module")
def server():
    with H.server() as k:
        yield k


@pytest.fixture(scope="module")
def client(server):
    c = server.pykmip_client()
    try:
        yield c
    finally:
        c.close()


def _attrs_by_name(attrs):
    out = {}
    for a in attrs:
        out.setdefault(a.attribute_name.value, []).append(a.attribute_value)
    return out


# -------------------------------------------------------------- raw TTLV
T_ATTRIBUTE, T_ATTR_NAME, T_ATTR_VALUE, T_ATTR_INDEX = 0x420008, 0x42000A, 0x42000B, 0x420009
OP_ADD_ATTRIBUTE, OP_GET_ATTRIBUTES = 0x0D, 0x0B


def add_attribute_raw(server, uid, name, value):
    req = H.request(H.batch_item(OP_ADD_ATTRIBUTE, [
        H.item("UniqueIdentifier", H.TEXT, uid),
        H.item(T_ATTRIBUTE, H.STRUCT, [H.item(T_ATTR_NAME, H.TEXT, name),
                                       H.item(T_ATTR_VALUE, H.TEXT, value)]),
    ]))
    return H.decode(server.send_ttlv(req))


# ---------------------------------------------------------------- tests
def test_vcenter_flow(server, client):
    # Discover Versions through the low-level proxy.
    dv = client.proxy.discover_versions(protocol_versions=None)
    assert dv.result_status.value == enums.ResultStatus.SUCCESS
    versions = [(v.major, v.minor) for v in dv.protocol_versions]
    assert versions[:5] == [(1, 4), (1, 3), (1, 2), (1, 1), (1, 0)]

    name = "vcenter-kek-%d" % os.getpid()
    uid = client.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                        cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                  enums.CryptographicUsageMask.DECRYPT])
    assert len(uid) == 36

    _, attrs = client.get_attributes(uid, ["State"])
    assert len(attrs) == 1
    assert attrs[0].attribute_name.value == "State"
    assert attrs[0].attribute_value.value == enums.State.PRE_ACTIVE

    _, attrs = client.get_attributes(uid)
    by = _attrs_by_name(attrs)
    for n in ("Unique Identifier", "Object Type", "Cryptographic Algorithm",
              "Cryptographic Length", "Cryptographic Usage Mask", "State", "Name",
              "Initial Date", "Last Change Date", "Digest"):
        assert n in by, n
    assert by["Cryptographic Length"][0].value == 256
    assert by["Cryptographic Algorithm"][0].value == enums.CryptographicAlgorithm.AES
    assert by["Name"][0].name_value.value == name
    assert by["Cryptographic Usage Mask"][0].value == 12

    client.activate(uid)
    _, attrs = client.get_attributes(uid, ["State"])
    assert attrs[0].attribute_value.value == enums.State.ACTIVE

    key = client.get(uid)
    assert isinstance(key, objects.SymmetricKey)
    assert key.cryptographic_algorithm == enums.CryptographicAlgorithm.AES
    assert key.cryptographic_length == 256
    assert len(key.value) == 32

    found = client.locate(attributes=[AF.create_attribute(enums.AttributeType.NAME, name)])
    assert found == [uid]

    resp = add_attribute_raw(server, uid, "x-Vendor-Key-Id", "vk-%s" % uid[:8])
    assert H.find_all(resp, "ResultStatus") == [H.STATUS_SUCCESS]
    _, attrs = client.get_attributes(uid, ["x-Vendor-Key-Id"])
    assert [a.attribute_value.value for a in attrs] == ["vk-%s" % uid[:8]]

    # An Active key is not destroyed.
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.destroy(uid)
    assert ei.value.reason == enums.ResultReason.PERMISSION_DENIED

    client.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    _, attrs = client.get_attributes(uid, ["State"])
    assert attrs[0].attribute_value.value == enums.State.DEACTIVATED
    client.destroy(uid)
    _, attrs = client.get_attributes(uid, ["State"])
    assert attrs[0].attribute_value.value == enums.State.DESTROYED
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.get(uid)
    assert ei.value.reason == enums.ResultReason.ITEM_NOT_FOUND
    # Destroyed objects are no longer located.
    assert client.locate(attributes=[AF.create_attribute(enums.AttributeType.NAME, name)]) == []


def test_query(client):
    r = client.proxy.query(query_functions=[
        enums.QueryFunction.QUERY_OPERATIONS, enums.QueryFunction.QUERY_OBJECTS,
        enums.QueryFunction.QUERY_SERVER_INFORMATION])
    assert r.result_status.value == enums.ResultStatus.SUCCESS
    ops = set(r.operations)
    for op in (enums.Operation.CREATE, enums.Operation.GET, enums.Operation.LOCATE,
               enums.Operation.ACTIVATE, enums.Operation.REVOKE, enums.Operation.DESTROY,
               enums.Operation.QUERY, enums.Operation.DISCOVER_VERSIONS):
        assert op in ops
    # Asynchronous operations and Certify (kmsctl init makes an issuing
    # CA) are there; the server-to-client Notify and Put are not.
    for op in (enums.Operation.POLL, enums.Operation.CANCEL, enums.Operation.CERTIFY,
               enums.Operation.CREATE_SPLIT_KEY):
        assert op in ops
    assert enums.Operation.NOTIFY not in ops and enums.Operation.PUT not in ops
    assert enums.ObjectType.SYMMETRIC_KEY in set(r.object_types)
    assert enums.ObjectType.SPLIT_KEY in set(r.object_types)
    assert r.vendor_identification.startswith("kmsd")


def test_query_14_decoded_by_pykmip(server):
    # Every Query Function of KMIP 1.4 over TLS; PyKMIP's own decoder
    # (not ours) reads the answer: Server Information, RNG Parameters,
    # Profile Information, Capability Information in the spec's order.
    from kmip.core import utils
    from kmip.core.messages import messages
    req = H.query_request(functions=range(1, 13))
    req = req.replace(H.item("Minor", H.INT, 1), H.item("Minor", H.INT, 4))
    data = server.send_ttlv(req)
    msg = messages.ResponseMessage()
    msg.read(utils.BytearrayStream(data), kmip_version=enums.KMIPVersion.KMIP_1_4)
    bi = msg.batch_items[0]
    assert bi.result_status.value == enums.ResultStatus.SUCCESS
    p = bi.response_payload
    assert p.server_information is not None
    assert p.vendor_identification.startswith("kmsd")
    assert not p.extension_information
    names = {pi.profile_name for pi in p.profile_information}
    assert enums.ProfileName.BASELINE_SERVER_TLSv12_KMIPv14 in names
    assert enums.ProfileName.SYMMETRIC_KEY_LIFECYCLE_SERVER_KMIPv10 in names
    assert enums.ProfileName.COMPLETE_SERVER_BASIC_KMIPv14 not in names
    assert p.rng_parameters[0].rng_algorithm == enums.RNGAlgorithm.DRBG
    cap = p.capability_information[0]
    # PyKMIP 0.10 reads Batch Undo Capability into its batch_continue field
    # (a bug of its reader); both are true here, so check that one and the
    # raw items.
    assert cap.batch_continue_capability is True and cap.asynchronous_capability is True
    tree = H.decode(data)
    true = (1).to_bytes(8, "big")
    assert H.find_all(tree, 0x4200F9) == [true] and H.find_all(tree, 0x4200FA) == [true]
    # Operations are those with a handler, ascending.
    ops = [o.value for o in p.operations]
    assert ops == sorted(ops) and enums.Operation.POLL.value in ops
    assert enums.Operation.NOTIFY.value not in ops


def test_create_variants_and_misuse(client):
    for alg, length in ((enums.CryptographicAlgorithm.AES, 128),
                        (enums.CryptographicAlgorithm.AES, 192),
                        (enums.CryptographicAlgorithm.TRIPLE_DES, 192),
                        (enums.CryptographicAlgorithm.HMAC_SHA256, 256),
                        (enums.CryptographicAlgorithm.HMAC_SHA512, 512)):
        uid = client.create(alg, length)
        k = client.get(uid)
        assert k.cryptographic_algorithm == alg
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.create(enums.CryptographicAlgorithm.AES, 100)
    assert ei.value.reason == enums.ResultReason.INVALID_FIELD
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.get("00000000-0000-4000-8000-000000000000")
    assert ei.value.reason == enums.ResultReason.ITEM_NOT_FOUND
    uid = client.create(enums.CryptographicAlgorithm.AES, 256)
    client.activate(uid)
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.activate(uid)
    assert ei.value.reason == enums.ResultReason.PERMISSION_DENIED


def test_attribute_list_check_locate(client):
    uid = client.create(enums.CryptographicAlgorithm.AES, 128, name="ck-%d" % os.getpid())
    names = client.get_attribute_list(uid)
    assert "State" in names and "Unique Identifier" in names
    assert not any(n.startswith("_") for n in names)
    assert client.check(uid, cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT]) == uid
    # Locate by object type + algorithm + length finds it; by state too.
    found = client.locate(attributes=[
        AF.create_attribute(enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY),
        AF.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM,
                            enums.CryptographicAlgorithm.AES),
        AF.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 128),
    ])
    assert uid in found
    found = client.locate(attributes=[
        AF.create_attribute(enums.AttributeType.STATE, enums.State.PRE_ACTIVE)])
    assert uid in found
    assert client.locate(maximum_items=1) and len(client.locate(maximum_items=1)) == 1


def test_register_secret_roundtrip(client):
    key = objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 128, bytes(range(16)),
                               name="registered-%d" % os.getpid())
    try:
        uid = client.register(key)
    except exceptions.KmipOperationFailure as e:
        pytest.skip("Register not available: %s" % e)
    assert client.get(uid).value == bytes(range(16))


def _raw_op(server, op, uid, *extra):
    resp = H.decode(server.send_ttlv(H.request(H.batch_item(
        op, [H.item("UniqueIdentifier", H.TEXT, uid), *extra]))))
    reasons = H.find_all(resp, "ResultReason")
    return H.find_all(resp, "ResultStatus")[0], (reasons[0] if reasons else None), resp


def test_archive_recover_lease_usage(server, client):
    """Obtain Lease, Archive, Recover and Get Usage Allocation: PyKMIP 0.10
    cannot decode these responses, so they go as raw TTLV."""
    OBTAIN_LEASE, GET_USAGE_ALLOCATION, ARCHIVE, RECOVER = 0x10, 0x11, 0x15, 0x16
    uid = client.create(enums.CryptographicAlgorithm.AES, 256)
    st, reason, _ = _raw_op(server, OBTAIN_LEASE, uid)
    assert (st, reason) == (H.STATUS_FAILED, enums.ResultReason.PERMISSION_DENIED.value)
    client.activate(uid)
    st, _, resp = _raw_op(server, OBTAIN_LEASE, uid)
    assert st == H.STATUS_SUCCESS
    assert H.find_all(resp, 0x420049)[0] > 0  # Lease Time
    st, _, _ = _raw_op(server, ARCHIVE, uid)
    assert st == H.STATUS_SUCCESS
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        client.get(uid)
    assert ei.value.reason == enums.ResultReason.OBJECT_ARCHIVED
    st, _, _ = _raw_op(server, RECOVER, uid)
    assert st == H.STATUS_SUCCESS
    assert len(client.get(uid).value) == 32
    # No Usage Limits on the key: allocation is refused.
    st, reason, _ = _raw_op(server, GET_USAGE_ALLOCATION, uid, H.item(0x420096, H.LONG, 10))
    assert (st, reason) == (H.STATUS_FAILED, enums.ResultReason.PERMISSION_DENIED.value)


def test_batch_id_placeholder_raw(server):
    """Create + Activate + Get in one batch with no Unique Identifier after
    the first item (ID Placeholder), as raw TTLV."""
    def attr(name, typ, val):
        return H.item(T_ATTRIBUTE, H.STRUCT, [H.item(T_ATTR_NAME, H.TEXT, name),
                                              H.item(T_ATTR_VALUE, typ, val)])
    create = H.batch_item(0x01, [
        H.item(0x420057, H.ENUM, 2),
        H.item(0x420091, H.STRUCT, [attr("Cryptographic Algorithm", H.ENUM, 3),
                                    attr("Cryptographic Length", H.INT, 256),
                                    attr("Cryptographic Usage Mask", H.INT, 12)]),
    ])
    req = H.request(create, H.batch_item(0x12), H.batch_item(0x0A))
    resp = H.decode(server.send_ttlv(req))
    assert H.find_all(resp, "ResultStatus") == [0, 0, 0]
    uids = H.find_all(resp, "UniqueIdentifier")
    assert len(set(uids)) == 1 and len(uids) == 3


@pytest.mark.parametrize("version", ["KMIP_1_0", "KMIP_1_1", "KMIP_1_3", "KMIP_1_4"])
def test_protocol_versions(server, version):
    """The same basic flow spoken as KMIP 1.0 / 1.1 (vCenter) / 1.3 / 1.4."""
    c = server.pykmip_client()
    try:
        c.kmip_version = getattr(enums.KMIPVersion, version)
        uid = c.create(enums.CryptographicAlgorithm.AES, 256, name="v-%s" % version)
        c.activate(uid)
        _, attrs = c.get_attributes(uid, ["State"])
        assert attrs[0].attribute_value.value == enums.State.ACTIVE
        assert len(c.get(uid).value) == 32
        assert uid in c.locate(attributes=[
            AF.create_attribute(enums.AttributeType.NAME, "v-%s" % version)])
    finally:
        c.close()
