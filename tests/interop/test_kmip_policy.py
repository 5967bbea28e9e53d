"""tests/interop/test_kmip_policy.py: Operation Policy Name through PyKMIP
against a real kmsd over mutual TLS (set up with `kmsctl init`). Two
certificate identities of one tenant: a key PyKMIP creates under the
"default" policy (KMIP 1.1 section 3.18.2) is its creator's alone, the
other identity gets Permission Denied and does not locate it; a key
without a policy, or under "public", is the tenant's; an unknown policy
name is refused with Invalid Field.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from kmip.core import enums  # noqa: E402
from kmip.core.factories import attributes as attr_factory  # noqa: E402
from kmip.pie import exceptions  # noqa: E402
from kmip.pie.client import ProxyKmipClient  # noqa: E402
from test_tenants import Kmsd, need_kmsd  # noqa: E402

AF = attr_factory.AttributeFactory()


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    need_kmsd()
    k = Kmsd(tmp_path_factory.mktemp("policy") / "kms")
    clients = []
    try:
        k.ctl("tenant", "add", "acme", check=0)
        for name in ("acme-one", "acme-two"):
            cert, key = k.issue(name)
            k.ctl("client", "add", "--tenant", "acme", "--cert", str(cert), check=0)
            c = ProxyKmipClient(hostname="127.0.0.1", port=k.port, cert=str(cert), key=str(key),
                                ca=str(k.pki / "ca.crt"))
            c.open()
            clients.append(c)
        yield clients
    finally:
        for c in clients:
            c.close()
        problems = k.stop()
    assert not problems, problems


def _name(n):
    return AF.create_attribute(enums.AttributeType.NAME, n)


def test_default_policy_is_the_creators(two):
    one, other = two
    name = "policy-key-%d" % os.getpid()
    uid = one.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                     operation_policy_name="default")
    assert one.get(uid).value
    _, attrs = one.get_attributes(uid, ["Operation Policy Name"])
    assert attrs[0].attribute_value.value == "default"
    for call in (lambda: other.get(uid), lambda: other.get_attributes(uid, ["State"]),
                 lambda: other.get_attribute_list(uid), lambda: other.destroy(uid)):
        with pytest.raises(exceptions.KmipOperationFailure) as ei:
            call()
        assert ei.value.reason == enums.ResultReason.PERMISSION_DENIED
    assert other.locate(attributes=[_name(name)]) == []
    assert one.locate(attributes=[_name(name)]) == [uid]
    one.destroy(uid)


def test_tenant_policy_and_unknown_names(two):
    one, other = two
    for policy in (None, "public"):
        uid = one.create(enums.CryptographicAlgorithm.AES, 128, operation_policy_name=policy)
        assert other.get(uid).value
    with pytest.raises(exceptions.KmipOperationFailure) as ei:
        one.create(enums.CryptographicAlgorithm.AES, 128, operation_policy_name="gold")
    assert ei.value.reason == enums.ResultReason.INVALID_FIELD
