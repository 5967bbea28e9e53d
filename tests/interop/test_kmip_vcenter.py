"""tests/interop/test_kmip_vcenter.py: the vCenter key-provider flow, spoken as vCenter speaks it.

vCenter is a KMIP 1.1 client over mutual TLS 1.2. PyKMIP 0.10 defaults to
KMIP 1.2, so the client here is pinned to KMIPVersion.KMIP_1_1 and TLS 1.2,
and a wiretap on PyKMIP's own connection asserts that every request and
every response on the wire carries Protocol Version 1.1.

The flow: Discover Versions; Create AES-256 with a Name and Cryptographic
Usage Mask Encrypt|Decrypt; Get Attributes for State only and with no
names (everything); Activate; Get twice (32 identical bytes); Locate by
Name; Add Attribute x-Vendor-Key-Id (PyKMIP 0.10 cannot build a KMIP 1.x
Add Attribute, so that one request is raw TTLV written on PyKMIP's own
connection) and Get Attributes shows it; Revoke (Cessation of Operation)
-> Deactivated; Destroy; then Get answers Operation Failed / Item Not
Found, as the KMIP 1.1 test cases show after a Destroy (test case 3.1.4,
"Dual Client Test Case"), and Locate by the Name no longer finds it.

Failover-like behaviour: a second client on its own connection sees a key
the moment the first client's Create is acknowledged (Get, Get Attributes,
Locate by Name), state changes made by either client are seen by the other
at once, and the second client keeps working when the first connection is
dropped without a KMIP goodbye. After a kill -9 of kmsd, a client that
reconnects gets the same key bytes.

It deliberately does not test vCenter's trust setup (certificate
exchange in the vCenter UI) or a second kmsd node (replication tests).
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kmsd_harness as H  # noqa: E402

from kmip.core import enums  # noqa: E402
from kmip.core.factories import attributes as attr_factory  # noqa: E402
from kmip.pie import exceptions, objects  # noqa: E402

AF = attr_factory.AttributeFactory()

T_ATTRIBUTE, T_ATTR_NAME, T_ATTR_VALUE = 0x420008, 0x42000A, 0x42000B
T_REQUEST_PAYLOAD = 0x420079
OP_ADD_ATTRIBUTE = 0x0D


class Wiretap:
    """Stands in for PyKMIP's KMIPProtocol: records every message both ways."""

    def __init__(self, protocol):
        self.inner = protocol
        self.sent, self.received = [], []

    def write(self, data):
        self.sent.append(bytes(data))
        self.inner.write(data)

    def read(self):
        data = self.inner.read()
        self.received.append(bytes(data.buffer))
        return data

    def raw(self, request_bytes):
        """Send hand-built TTLV on this same connection; returns the decoded response."""
        self.write(request_bytes)
        return H.decode(bytes(self.read().buffer))


def versions_on_wire(messages):
    out = set()
    for m in messages:
        tree = H.decode(m)
        pv = H.find_all(tree, "ProtocolVersion")
        assert pv, tree
        out.add((H.find_all(pv[0], "Major")[0], H.find_all(pv[0], "Minor")[0]))
    return out


def vcenter_client(k):
    """A PyKMIP client set up like vCenter: KMIP 1.1 over TLS 1.2, wiretapped."""
    c = k.pykmip_client(tls="1.2")
    c.kmip_version = enums.KMIPVersion.KMIP_1_1
    tap = Wiretap(c.proxy.protocol)
    c.proxy.protocol = tap
    return c, tap


def attrs_by_name(attrs):
    out = {}
    for a in attrs:
        out.setdefault(a.attribute_name.value, []).append(a.attribute_value)
    return out


def state_of(c, uid):
    _, attrs = c.get_attributes(uid, ["State"])
    assert [a.attribute_name.value for a in attrs] == ["State"]
    return attrs[0].attribute_value.value


def by_name(name):
    return [AF.create_attribute(enums.AttributeType.NAME, name)]


@pytest.fixture(scope="module")
def server():
    with H.server() as k:
        yield k


@pytest.fixture
def vc(server):
    c, tap = vcenter_client(server)
    try:
        yield c, tap
    finally:
        c.close()


def test_vcenter_flow(server, vc):
    c, tap = vc
    dv = c.proxy.discover_versions(protocol_versions=None)
    assert dv.result_status.value == enums.ResultStatus.SUCCESS
    versions = [(v.major, v.minor) for v in dv.protocol_versions]
    assert (1, 1) in versions
    assert versions == sorted(versions, reverse=True)  # highest first (KMIP 1.1 4.26)

    name = "vcenter-%d-%d" % (os.getpid(), server.port)
    uid = c.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                   cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                             enums.CryptographicUsageMask.DECRYPT])
    assert isinstance(uid, str) and uid

    # Get Attributes: State only...
    assert state_of(c, uid) == enums.State.PRE_ACTIVE
    # ...and with no names at all (the request really carries none).
    n_sent = len(tap.sent)
    _, attrs = c.get_attributes(uid)
    req = H.decode(tap.sent[n_sent])
    payload = H.find_all(req, T_REQUEST_PAYLOAD)[0]
    assert H.find_all(payload, T_ATTR_NAME) == []
    by = attrs_by_name(attrs)
    for n in ("Unique Identifier", "Object Type", "Cryptographic Algorithm",
              "Cryptographic Length", "Cryptographic Usage Mask", "State", "Name",
              "Initial Date", "Last Change Date", "Digest"):
        assert n in by, n
    assert by["Unique Identifier"][0].value == uid
    assert by["Object Type"][0].value == enums.ObjectType.SYMMETRIC_KEY
    assert by["Cryptographic Algorithm"][0].value == enums.CryptographicAlgorithm.AES
    assert by["Cryptographic Length"][0].value == 256
    assert by["Cryptographic Usage Mask"][0].value == 0x4 | 0x8  # Encrypt | Decrypt
    assert [v.name_value.value for v in by["Name"]] == [name]
    assert by["State"][0].value == enums.State.PRE_ACTIVE

    c.activate(uid)
    assert state_of(c, uid) == enums.State.ACTIVE

    k1 = c.get(uid)
    assert isinstance(k1, objects.SymmetricKey)
    assert k1.cryptographic_algorithm == enums.CryptographicAlgorithm.AES
    assert k1.cryptographic_length == 256
    assert len(k1.value) == 32
    assert c.get(uid).value == k1.value
    assert k1.value != bytes(32)

    assert c.locate(attributes=by_name(name)) == [uid]

    vendor_id = "vk-" + uid
    resp = tap.raw(H.request(H.batch_item(OP_ADD_ATTRIBUTE, [
        H.item("UniqueIdentifier", H.TEXT, uid),
        H.item(T_ATTRIBUTE, H.STRUCT, [H.item(T_ATTR_NAME, H.TEXT, "x-Vendor-Key-Id"),
                                       H.item(T_ATTR_VALUE, H.TEXT, vendor_id)])]),
        major=1, minor=1))
    assert H.find_all(resp, "ResultStatus") == [H.STATUS_SUCCESS], resp
    _, attrs = c.get_attributes(uid, ["x-Vendor-Key-Id"])
    assert [(a.attribute_name.value, a.attribute_value.value) for a in attrs] == \
        [("x-Vendor-Key-Id", vendor_id)]
    _, attrs = c.get_attributes(uid)
    assert [v.value for v in attrs_by_name(attrs)["x-Vendor-Key-Id"]] == [vendor_id]

    c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    assert state_of(c, uid) == enums.State.DEACTIVATED
    # A Deactivated key can still be fetched (vCenter may need it to decrypt).
    assert c.get(uid).value == k1.value

    c.destroy(uid)
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        c.get(uid)
    assert ei.value.status == enums.ResultStatus.OPERATION_FAILED
    assert ei.value.reason == enums.ResultReason.ITEM_NOT_FOUND
    # KMIP 1.1 4.21 lets the server keep the metadata of a destroyed object;
    # if it does, the state says so.
    try:
        st = state_of(c, uid)
    except exceptions.KmipOperationFailure as e:
        assert e.reason == enums.ResultReason.ITEM_NOT_FOUND
    else:
        assert st == enums.State.DESTROYED
    assert c.locate(attributes=by_name(name)) == []

    # Everything above went over the wire as KMIP 1.1, both directions.
    assert len(tap.sent) >= 15 and len(tap.received) == len(tap.sent)
    assert versions_on_wire(tap.sent) == {(1, 1)}
    assert versions_on_wire(tap.received) == {(1, 1)}


def test_two_clients_see_the_same_key_at_once(server):
    a, tap_a = vcenter_client(server)
    b, tap_b = vcenter_client(server)
    try:
        for i in range(10):
            name = "vc-failover-%d-%d-%d" % (os.getpid(), server.port, i)
            uid = a.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                           cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                     enums.CryptographicUsageMask.DECRYPT])
            # No sleep: B asks on its own connection right after A's answer.
            assert b.locate(attributes=by_name(name)) == [uid]
            assert state_of(b, uid) == enums.State.PRE_ACTIVE
            b.activate(uid)
            assert state_of(a, uid) == enums.State.ACTIVE
            kb = b.get(uid).value
            assert len(kb) == 32 and a.get(uid).value == kb
        # A's connection drops without a goodbye (vCenter failing over):
        # B carries on and still sees A's keys.
        a.proxy.socket.close()
        assert b.locate(attributes=by_name(name)) == [uid]
        assert b.get(uid).value == kb
        b.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
        b.destroy(uid)
        with pytest.raises(exceptions.KmipOperationFailure) as ei:
            b.get(uid)
        assert ei.value.reason == enums.ResultReason.ITEM_NOT_FOUND
        for tap in (tap_a, tap_b):
            assert versions_on_wire(tap.sent) == {(1, 1)}
            assert versions_on_wire(tap.received) == {(1, 1)}
    finally:
        for c in (a, b):
            try:
                c.close()
            except Exception:
                pass


def test_two_connections_concurrent_creates_are_all_visible(server):
    """Creates acknowledged on one connection while the other keeps working
    are all visible to the other, each under its own Name."""
    a, _ = vcenter_client(server)
    b, _ = vcenter_client(server)
    try:
        made = []
        for i in range(6):
            src = a if i % 2 == 0 else b
            name = "vc-mix-%d-%d-%d" % (os.getpid(), server.port, i)
            made.append((src.create(enums.CryptographicAlgorithm.AES, 256, name=name), name))
        for uid, name in made:
            for c in (a, b):
                assert c.locate(attributes=by_name(name)) == [uid]
        assert len({u for u, _ in made}) == len(made)
    finally:
        a.close()
        b.close()



def test_reconnect_after_kmsd_crash(kmsd_factory):
    """vCenter's key provider reconnects after the KMS dies: a key it was
    given before a kill -9 is served, byte for byte, on a new connection."""
    k = kmsd_factory()
    a, _ = vcenter_client(k)
    name = "vc-crash-%d-%d" % (os.getpid(), k.port)
    try:
        uid = a.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                       cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                 enums.CryptographicUsageMask.DECRYPT])
        a.activate(uid)
        material = a.get(uid).value
    finally:
        a.close()
    k.proc.kill()
    k.proc.wait(10)
    k.start()
    b, tap = vcenter_client(k)
    try:
        assert b.locate(attributes=by_name(name)) == [uid]
        assert state_of(b, uid) == enums.State.ACTIVE
        assert b.get(uid).value == material
        assert versions_on_wire(tap.received) == {(1, 1)}
    finally:
        b.close()
    k.stop()
