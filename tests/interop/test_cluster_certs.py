"""tests/interop/test_cluster_certs.py: node certificates and KMIP client
certificates stay in their own roles (docs/cluster.md, "Peer links").

- a certificate with the kmsd peer role (extended key usage
  CERTS_PEER_ROLE_OID), issued by the very CA the KMIP port trusts, is
  refused on the KMIP port right after the handshake, with a WARN line
  naming it; the same certificate without the role is served;
(a KMIP client certificate refused on the peer port: see
test_cluster_failover.py, which runs a cluster).
"""
import os
import subprocess

import kmsd_harness as H

PEER_ROLE_OID = "2.25.328670954439281658831151738066534397793"


def issue(d, ca, ca_key, cn, peer_role):
    """A P-256 key and a certificate for it signed by ca/ca_key; with the
    peer role when asked. Returns (cert path, key path)."""
    key, csr, crt = (os.path.join(str(d), "%s.%s" % (cn, e)) for e in ("key", "csr", "crt"))
    ext = os.path.join(str(d), "%s.ext" % cn)
    eku = "serverAuth, clientAuth" + (", " + PEER_ROLE_OID if peer_role else "")
    with open(ext, "w") as f:
        f.write("basicConstraints = CA:FALSE\nextendedKeyUsage = %s\n" % eku)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj", "/CN=" + cn,
                    "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


def test_node_certificate_refused_on_kmip_port(kmsd_factory, tmp_path):
    k = kmsd_factory()
    log_at = len(k.log_text())
    crt, key = issue(tmp_path, k.ca, k.ca_key, "kms-b", peer_role=True)
    s = k.raw_tls(certfile=crt, keyfile=key)
    try:
        try:
            s.sendall(H.query_request())
        except OSError:
            pass  # already closed: as good
        assert H.closed_by_peer(s, timeout=5.0)
    finally:
        s.close()
    m = k.wait_log(r"WARN kmsd: conn \d+ \S+ refused: certificate cn=kms-b carries the kmsd "
                   r"peer role", start=log_at)
    assert m
    assert "node certificate on the KMIP port" in k.log_text()[log_at:]
    assert "op=Query" not in k.log_text()[log_at:]

    # The same CA and subject kind without the role: a KMIP client like any
    # other (this one is not registered, so it is answered, and refused by
    # identity, not by role).
    crt, key = issue(tmp_path, k.ca, k.ca_key, "kms-c", peer_role=False)
    s = k.raw_tls(certfile=crt, keyfile=key)
    try:
        resp = k.send_ttlv(H.query_request(), sock=s)
        assert H.statuses(resp)
    finally:
        s.close()
