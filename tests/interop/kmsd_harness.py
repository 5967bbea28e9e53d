"""tests/interop/kmsd_harness.py: start a real kmsd for an interop test.

Every interop test file uses this (through conftest.py's `kmsd` and
`kmsd_factory` fixtures, or `kmsd_harness.client()` directly):

- the build is found through $KMSD_BUILD (default <repo>/build; a relative
  value is taken relative to the repository root);
- `Kmsd(tmpdir, overrides)` runs `kmsctl init --dir DIR --listen
  127.0.0.1:<free port>`, deep-merges `overrides` (a dict shaped like
  kmsd.yaml, e.g. {"limits": {"idle_timeout": "2s"}}) into DIR/kmsd.yaml,
  starts `kmsd -c DIR/kmsd.yaml` and waits until the port accepts;
- the object gives host, port, ca/cert/key paths (the admin client
  certificate made by init), pid, log path, and helpers: pykmip_client(),
  raw_tls(), send_ttlv(), read_response(), rss_kb(), reload(), stop();
- a cluster: `Kmsd(tmpdir, peer=True, node_id="a")` is a first node
  (`kmsctl init --peer-listen`), `first.invite()` a join token, and
  `Kmsd(tmpdir, join=token, node_id="b", client_of=first)` a node set up by
  `kmsctl cluster join` (KMIP clients use the first node's admin client
  certificate: clients replicate); `form_cluster(tmpdir, n)` makes n (on
  127.0.0.1..n sharing one KMIP port with shared_port, behind cuttable
  tcpproxy fronts with fronts), `stop_cluster()` ends them, and
  `pykmip_failover()` is a PyKMIP client given every node's host;
- a tiny TTLV encoder/decoder (enough to build requests by hand and find
  Result Status values in responses) for the byte-level tests.

It deliberately does not know KMIP semantics beyond that: tests assert them.
Runs under /usr/bin/python3 (PyKMIP is installed for that interpreter).
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def report(line):
    """A figure a test measured (rates, times, counts): printed, and added
    to the file KMS_TEST_REPORT names, which tests/run.sh prints after the
    interop tests (pytest keeps a passing test's output to itself)."""
    print(line)
    path = os.environ.get("KMS_TEST_REPORT")
    if path:
        with open(path, "a") as f:
            f.write("%s: %s\n" % (os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0],
                                   line.strip()))


def build_dir():
    b = os.environ.get("KMSD_BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def kmsd_bin():
    return os.path.join(build_dir(), "kmsd")


def kmsctl_bin():
    return os.path.join(build_dir(), "kmsctl")


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_shared_port(hosts):
    """A TCP port free on every address of `hosts` (nodes sharing one port
    on 127.0.0.1, 127.0.0.2, ..., as a client's host list expects)."""
    for _ in range(100):
        port = free_port(hosts[0])
        try:
            for h in hosts[1:]:
                s = socket.socket()
                try:
                    s.bind((h, port))
                finally:
                    s.close()
            return port
        except OSError:
            continue
    raise AssertionError("no port free on all of %s" % (hosts,))


def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


# ------------------------------------------------------------------ TTLV
STRUCT, INT, LONG, BIGINT, ENUM, BOOL, TEXT, BYTES, DATE, INTERVAL = range(1, 11)

TAG = {
    "RequestMessage": 0x420078, "ResponseMessage": 0x42007B,
    "RequestHeader": 0x420077, "ResponseHeader": 0x42007A,
    "ProtocolVersion": 0x420069, "Major": 0x42006A, "Minor": 0x42006B,
    "BatchCount": 0x42000D, "BatchItem": 0x42000F, "Operation": 0x42005C,
    "RequestPayload": 0x420079, "ResponsePayload": 0x42007C,
    "ResultStatus": 0x42007F, "ResultReason": 0x42007E, "ResultMessage": 0x42007D,
    "QueryFunction": 0x420074, "UniqueIdentifier": 0x420094,
}
OP_QUERY = 0x18
OP_DISCOVER_VERSIONS = 0x1E
STATUS_SUCCESS = 0
STATUS_FAILED = 1
REASON_INVALID_MESSAGE = 0x04


def item(tag, typ, value):
    """Encode one TTLV item; value is bytes (already encoded) for structures."""
    tag = TAG.get(tag, tag)
    if typ == STRUCT:
        body = b"".join(value)
    elif typ in (INT, ENUM, INTERVAL):
        body = struct.pack(">I", value & 0xFFFFFFFF)
    elif typ in (LONG, DATE):
        body = struct.pack(">q", value)
    elif typ == BOOL:
        body = struct.pack(">Q", 1 if value else 0)
    elif typ == TEXT:
        body = value.encode() if isinstance(value, str) else value
    else:
        body = value
    pad = (-len(body)) % 8
    return struct.pack(">I", tag)[1:] + bytes([typ]) + struct.pack(">I", len(body)) + body + b"\0" * pad


def request(*batch_items, major=1, minor=1):
    """A Request Message with the given batch items (each from batch_item())."""
    hdr = item("RequestHeader", STRUCT, [
        item("ProtocolVersion", STRUCT, [item("Major", INT, major), item("Minor", INT, minor)]),
        item("BatchCount", INT, len(batch_items)),
    ])
    return item("RequestMessage", STRUCT, [hdr, *batch_items])


def batch_item(op, payload=()):
    return item("BatchItem", STRUCT, [item("Operation", ENUM, op),
                                      item("RequestPayload", STRUCT, list(payload))])


def discover_versions_request():
    return request(batch_item(OP_DISCOVER_VERSIONS))


def query_request(functions=(1, 2)):
    return request(batch_item(OP_QUERY, [item("QueryFunction", ENUM, f) for f in functions]))


def decode(data, off=0, end=None):
    """Decode TTLV into a list of (tag, type, value); structures nest lists."""
    end = len(data) if end is None else end
    out = []
    while off + 8 <= end:
        tag = int.from_bytes(data[off:off + 3], "big")
        typ = data[off + 3]
        ln = struct.unpack(">I", data[off + 4:off + 8])[0]
        body = data[off + 8:off + 8 + ln]
        if typ == STRUCT:
            val = decode(data, off + 8, off + 8 + ln)
        elif typ in (INT, ENUM, INTERVAL):
            val = struct.unpack(">I", body[:4])[0]
        elif typ in (LONG, DATE):
            val = struct.unpack(">q", body[:8])[0]
        elif typ == TEXT:
            val = body.decode("utf-8", "replace")
        else:
            val = body
        out.append((tag, typ, val))
        off += 8 + ln + ((-ln) % 8 if typ not in (STRUCT,) else 0)
    return out


def find_all(tree, tag):
    tag = TAG.get(tag, tag)
    found = []
    for t, typ, v in tree:
        if t == tag:
            found.append(v)
        if typ == STRUCT:
            found.extend(find_all(v, tag))
    return found


def statuses(response_bytes):
    """Result Status of every batch item of a response, in order."""
    return find_all(decode(response_bytes), "ResultStatus")


# ---------------------------------------------------------------- server
class Kmsd:
    """One kmsd process in its own directory (see the module docstring)."""

    def __init__(self, workdir, overrides=None, start=True, peer=False, node_id=None, join=None,
                 client_of=None, setup_args=(), host="127.0.0.1", port=None, env=None):
        self.workdir = str(workdir)
        self.dir = os.path.join(self.workdir, "kms")
        self.host = host
        self.port = port or free_port(host)
        self.peer_port = free_port(host) if (peer or join) else None
        # Extra environment for this node's kmsd and kmsctl (SOFTHSM2_CONF).
        self.env = dict(os.environ, **env) if env else None
        self.node_id = node_id
        self.proc = None
        self.log_path = os.path.join(self.workdir, "kmsd.log")
        self.conf_path = os.path.join(self.dir, "kmsd.yaml")
        assert os.access(kmsd_bin(), os.X_OK), "kmsd not built at %s" % kmsd_bin()
        assert os.access(kmsctl_bin(), os.X_OK), "kmsctl not built at %s" % kmsctl_bin()
        args = ["--dir", self.dir, "--listen", "%s:%d" % (self.host, self.port)]
        if self.peer_port:
            args += ["--peer-listen", "%s:%d" % (self.host, self.peer_port)]
        if node_id:
            args += ["--node-id", node_id]
        cmd = ["cluster", "join", join] if join else ["init"]
        p = subprocess.run([kmsctl_bin(), *cmd, *args, *setup_args],
                           capture_output=True, text=True, timeout=120, env=self.env)
        assert p.returncode == 0, "kmsctl %s failed:\n%s%s" % (cmd[0], p.stdout, p.stderr)
        self.setup_output = p.stdout
        self.ca = os.path.join(self.dir, "pki", "ca.crt")
        self.ca_key = os.path.join(self.dir, "pki", "ca.key")
        # A joined node has no admin client of its own: clients replicate.
        owner = client_of or self
        self.cert = os.path.join(owner.dir, "pki", "client.crt")
        self.key = os.path.join(owner.dir, "pki", "client.key")
        self.server_cert = os.path.join(self.dir, "pki", "server.crt")
        self.server_key = os.path.join(self.dir, "pki", "server.key")
        self.configure(overrides or {})
        if start:
            self.start()

    # -- configuration
    def config(self):
        with open(self.conf_path) as f:
            return yaml.safe_load(f) or {}

    def configure(self, overrides):
        """Deep-merge overrides into kmsd.yaml (takes effect on start/reload)."""
        cfg = deep_merge(self.config(), overrides)
        with open(self.conf_path, "w") as f:
            yaml.safe_dump(cfg, f, default_flow_style=False)

    # -- cluster
    def kmsctl(self, *args, check=True, timeout=120):
        """Run `kmsctl --config <this node's kmsd.yaml> ARGS`; the CompletedProcess."""
        p = subprocess.run([kmsctl_bin(), "--config", self.conf_path, *args], capture_output=True,
                           text=True, timeout=timeout, env=self.env)
        if check:
            assert p.returncode == 0, "kmsctl %s failed (%d):\n%s%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr)
        return p

    def invite(self, *args):
        """A join token from this node (`kmsctl cluster invite`, its last stdout line)."""
        return self.kmsctl("cluster", "invite", *args).stdout.strip().splitlines()[-1]

    # -- process
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=60.0):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([kmsd_bin(), "-c", self.conf_path], stdout=log,
                                     stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("kmsd exited with %s during start:\n%s" %
                                     (self.proc.returncode, self.log_tail()))
            if "ready" in self.log_text() or self._port_open():
                if self._port_open():
                    return self
            time.sleep(0.05)
        raise AssertionError("kmsd did not listen within %ss:\n%s" % (timeout, self.log_tail()))

    def _port_open(self):
        try:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM; assert a clean exit 0 within timeout. Returns the exit code."""
        assert self.running(), "kmsd is not running:\n" + self.log_tail()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("kmsd did not exit within %ss of SIGTERM:\n%s" %
                                 (timeout, self.log_tail()))
        assert rc == 0, "kmsd exited %d after SIGTERM:\n%s" % (rc, self.log_tail())
        return rc

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(10)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def sanitized(self):
        """True when this kmsd is an ASan build (RSS then includes the quarantine)."""
        with open("/proc/%d/maps" % self.pid) as f:
            return "libasan" in f.read()

    def rss_slack_kb(self, normal_kb):
        """An RSS growth bound: normal_kb, or a loose one for sanitizer builds."""
        return normal_kb * 10 if self.sanitized() else normal_kb

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=8000):
        return self.log_text()[-n:]

    def wait_log(self, pattern, timeout=10.0, start=0):
        """Wait until the log (from offset `start`) matches regex `pattern`."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = rx.search(self.log_text()[start:])
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError("log never matched %r:\n%s" % (pattern, self.log_tail()))

    # -- clients
    def ssl_context(self, cert=True, version=None, ciphers=None, ca=None, certfile=None,
                    keyfile=None):
        """A client SSLContext; version "1.2"/"1.3" pins it; cert=False sends none."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(ca or self.ca)
        if cert:
            ctx.load_cert_chain(certfile or self.cert, keyfile or self.key)
        if version == "1.2":
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        elif version == "1.3":
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        if ciphers:
            ctx.set_ciphers(ciphers)
        return ctx

    def raw_tcp(self, timeout=10.0):
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def raw_tls(self, timeout=10.0, **kw):
        """A connected, handshaken TLS socket with the admin client certificate."""
        ctx = self.ssl_context(**kw)
        s = self.raw_tcp(timeout)
        try:
            return ctx.wrap_socket(s, server_hostname="localhost")
        except Exception:
            s.close()
            raise

    def send_ttlv(self, data, sock=None, timeout=10.0):
        """Send one request and return the response bytes (own connection if none)."""
        own = sock is None
        if own:
            sock = self.raw_tls(timeout)
        try:
            sock.sendall(data)
            return read_response(sock)
        finally:
            if own:
                sock.close()

    def pykmip_client(self, tls="1.3"):
        """An opened kmip.pie ProxyKmipClient over mutual TLS ("1.2" or "1.3")."""
        from kmip.pie.client import ProxyKmipClient
        c = ProxyKmipClient(hostname=self.host, port=self.port, cert=self.cert, key=self.key,
                            ca=self.ca,
                            ssl_version="PROTOCOL_TLSv1_2" if tls == "1.2" else "PROTOCOL_TLS",
                            )
        c.open()
        return c


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_response(sock):
    hdr = recv_exact(sock, 8)
    ln = struct.unpack(">I", hdr[4:8])[0]
    return hdr + recv_exact(sock, ln)


def closed_by_peer(sock, timeout=5.0):
    """True when the server closes the connection (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            d = sock.recv(4096)
            if not d:
                return True
    except (ConnectionError, ssl.SSLError, OSError) as e:
        if isinstance(e, socket.timeout):
            return False
        return True


def form_cluster(workdir, n, overrides=None, start=True, timeout=120.0, shared_port=False,
                 fronts=False, node_opts=None):
    """n nodes named a, b, c...: the first from `kmsctl init --peer-listen`,
    the others each from its own invite with `kmsctl cluster join`. Started
    when `start` (each joined node only once its KMIP port opens: it copies
    the cluster's keys first). Returns the list of Kmsd.

    - shared_port: node i listens on 127.0.0.<i+1> and every node on the
      same KMIP port, so one client host list names them all;
    - fronts: every node's peer address (the one in the node list, which
      its peers dial) is a tcpproxy.Proxy (`k.front`) forwarding to the
      port kmsd really listens on; the proxy knows which node connected
      (by the connecting process), so a test can cut any pair of nodes;
      stop_cluster() closes the proxies;
    - node_opts: {"b": {"env": {...}, "setup_args": (...)}} per node."""
    hosts = ["127.0.0.%d" % (i + 1) if shared_port else "127.0.0.1" for i in range(n)]
    port = free_shared_port(hosts) if shared_port else None
    node_opts = node_opts or {}
    nodes = []

    def source_of(peer, listen_port):
        import tcpproxy
        return tcpproxy.socket_owner(peer, listen_port,
                                     {k.pid: k.node_id for k in nodes if k.running()})

    def front(k):
        import tcpproxy
        real = free_port(k.host)
        # join also lists the inviter's address from the token (its real
        # port here): keep only the fronts, so every link goes through one.
        k.configure({"replication": {"listen": "%s:%d" % (k.host, real), "peers": [
            "%s:%d" % (n.host, n.peer_port) for n in nodes]}})
        k.front = tcpproxy.Proxy(k.peer_port, (k.host, real), k.host,
                                 source_of=lambda peer, lp=k.peer_port: source_of(peer, lp))

    for i in range(n):
        name = chr(ord("a") + i)
        d = os.path.join(str(workdir), name)
        os.makedirs(d, exist_ok=True)
        opts = node_opts.get(name, {})
        if i == 0:
            k = Kmsd(d, overrides, start=False, peer=True, node_id=name, host=hosts[i], port=port,
                     **opts)
        else:
            k = Kmsd(d, None, start=False, join=nodes[0].invite(), node_id=name,
                     client_of=nodes[0], host=hosts[i], port=port, **opts)
            if overrides:
                k.configure(overrides)
        if fronts:
            front(k)
        nodes.append(k)
        if start:
            k.start(timeout)
    return nodes


def fetch_key(k, uid):
    """The key bytes of uid as node k serves them, or None (not there yet,
    or k not serving)."""
    try:
        c = k.pykmip_client()
    except Exception:
        return None
    try:
        return c.get(uid).value
    except Exception:
        return None
    finally:
        c.close()


def wait_for(pred, timeout=30.0, what="condition", step=0.2):
    """Poll pred() until it returns something true (returned); assert with
    the last value after timeout seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("%s not reached within %ss (last: %r)" % (what, timeout, last))


@contextlib.contextmanager
def running_cluster(workdir, n, overrides=None, **kw):
    """form_cluster() for a `with` block (a module fixture); stop_cluster() after."""
    nodes = form_cluster(workdir, n, overrides, **kw)
    try:
        yield nodes
    finally:
        stop_cluster(nodes)


def stop_cluster(nodes):
    """Kill every node of form_cluster() and close its front proxy."""
    for k in nodes:
        k.kill()
        if getattr(k, "front", None):
            k.front.close()


def pykmip_failover(nodes, workdir, timeout=5):
    """An opened PyKMIP ProxyKmipClient configured as an operator would for
    a cluster: a client config file naming every node's host in one
    comma-separated list (PyKMIP tries them in order at open) with one
    port and a socket timeout."""
    from kmip.pie.client import ProxyKmipClient
    conf = os.path.join(str(workdir), "pykmip-failover.conf")
    k = nodes[0]
    with open(conf, "w") as f:
        f.write("[client]\nhost=%s\nport=%d\ncertfile=%s\nkeyfile=%s\nca_certs=%s\n"
                "cert_reqs=CERT_REQUIRED\nssl_version=PROTOCOL_TLS\ntimeout=%d\n"
                "do_handshake_on_connect=True\nsuppress_ragged_eofs=True\n"
                % (",".join(x.host for x in nodes), k.port, k.cert, k.key, k.ca, timeout))
    c = ProxyKmipClient(config="client", config_file=conf)
    # PyKMIP 0.10 ignores the file's timeout (KMIPProxy's own default of
    # 30 s is passed as an explicit value and wins): set it on the proxy.
    c.proxy.timeout = timeout
    c.open()
    return c


@contextlib.contextmanager
def server(overrides=None):
    """A kmsd in a fresh temporary directory, stopped (exit 0) at the end."""
    d = tempfile.mkdtemp(prefix="kmsd-it-")
    k = None
    try:
        k = Kmsd(d, overrides)
        try:
            yield k
        except BaseException:
            # Attach the server's side of the story to the failure output.
            print("---- kmsd log (%s) ----\n%s" % (k.log_path, k.log_tail()))
            raise
        k.stop()
    finally:
        if k is not None:
            k.kill()
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def client(overrides=None, tls="1.3"):
    """An opened PyKMIP ProxyKmipClient connected to a fresh kmsd."""
    with server(overrides) as k:
        c = k.pykmip_client(tls)
        try:
            yield c
        finally:
            c.close()
