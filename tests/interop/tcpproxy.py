"""tests/interop/tcpproxy.py: a test-only TCP proxy that can cut a link.

`Proxy(listen_port, target, host="127.0.0.1", source_of=None)` accepts on
host:listen_port and forwards each connection to target (host, port), one
thread per direction. What it does with the bytes is switchable at run time,
per direction ("up": connector -> target, "down": target -> connector) and,
when `source_of(peer_addr)` names who connected, per source:

- "forward": pass the bytes on (the default);
- "blackhole": drop them silently and keep both sockets open, as a network
  cut does to a live TCP connection; an end of stream is not passed on
  either, so neither end learns anything until its own timeouts fire;
- "reset": close both sockets with an RST (SO_LINGER 0) at once, and every
  new connection right after it is accepted.

A connection that dropped bytes has a damaged stream (TLS records are
missing), so `heal()` resets those and forwards everything again: the
endpoints reconnect as they would after a real cut. The proxy does not
delay, reorder or corrupt bytes, and it does not read TLS.
"""
import os
import socket
import struct
import threading

MODES = ("forward", "blackhole", "reset")


def _rst_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


class _Conn:
    def __init__(self, proxy, down, up, source):
        self.proxy, self.down, self.up, self.source = proxy, down, up, source
        self.damaged = False
        self.closed = False

    def close(self, rst=False):
        with self.proxy.lock:
            if self.closed:
                return
            self.closed = True
            self.proxy.conns.discard(self)
        for s in (self.down, self.up):
            if rst:
                _rst_close(s)
            else:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def pump(self, src, dst, direction):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            mode = self.proxy.mode(self.source, direction)
            if mode == "reset":
                self.close(rst=True)
                return
            if not data:
                if mode == "blackhole":
                    return  # the end of stream is lost in the cut too
                self.close()
                return
            if mode == "blackhole":
                self.damaged = True
                continue
            try:
                dst.sendall(data)
            except OSError:
                self.close()
                return


class Proxy:
    """One listening port forwarding to one target (see the module docstring)."""

    def __init__(self, listen_port, target, host="127.0.0.1", source_of=None):
        self.host, self.port, self.target = host, listen_port, target
        self.source_of = source_of
        self.lock = threading.Lock()
        self.conns = set()
        self.rules = {}  # (source or None, direction) -> mode
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, listen_port))
        self.sock.listen(64)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def mode(self, source, direction):
        with self.lock:
            for key in ((source, direction), (None, direction)):
                if key in self.rules:
                    return self.rules[key]
        return "forward"

    def set(self, mode, direction="both", source=None):
        """Switch the mode for one direction (or both) of connections from
        `source` (None: from anyone without a rule of its own). "reset"
        also resets the matching connections open now."""
        assert mode in MODES and direction in ("up", "down", "both")
        with self.lock:
            for d in (("up", "down") if direction == "both" else (direction,)):
                self.rules[(source, d)] = mode
            now = [c for c in self.conns if source is None or c.source == source]
        if mode == "reset":
            for c in now:
                c.close(rst=True)

    def sources(self):
        """The sources of the connections open now (None: not known)."""
        with self.lock:
            return sorted({c.source for c in self.conns}, key=str)

    def heal(self):
        """Forward everything again; reset the connections that lost bytes."""
        with self.lock:
            self.rules.clear()
            damaged = [c for c in self.conns if c.damaged]
        for c in damaged:
            c.close(rst=True)

    def _accept(self):
        while not self.stopping:
            try:
                down, peer = self.sock.accept()
            except OSError:
                return
            if self.stopping:
                down.close()
                return
            self.accepted += 1
            source = self.source_of(peer) if self.source_of else None
            if self.mode(source, "up") == "reset":
                _rst_close(down)
                continue
            try:
                up = socket.create_connection(self.target, timeout=5)
                up.settimeout(None)
            except OSError:
                _rst_close(down)
                continue
            c = _Conn(self, down, up, source)
            with self.lock:
                self.conns.add(c)
            threading.Thread(target=c.pump, args=(down, up, "up"), daemon=True).start()
            threading.Thread(target=c.pump, args=(up, down, "down"), daemon=True).start()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.close(rst=True)
        self.thread.join(5)


def socket_owner(peer, listen_port, pids):
    """Which of `pids` (a dict pid -> label) owns the TCP socket connected
    from `peer` (host, port) to our `listen_port` on loopback; None if none.
    Read from /proc: the socket's inode in /proc/net/tcp, then the process
    holding that inode among its descriptors."""
    want_local = peer[1]
    inode = None
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                p = line.split()
                lport = int(p[1].split(":")[1], 16)
                rport = int(p[2].split(":")[1], 16)
                if lport == want_local and rport == listen_port:
                    inode = p[9]
                    break
    except OSError:
        return None
    if inode is None:
        return None
    link = "socket:[%s]" % inode

    for pid, label in pids.items():
        d = "/proc/%d/fd" % pid
        try:
            for fd in os.listdir(d):
                try:
                    if os.readlink(os.path.join(d, fd)) == link:
                        return label
                except OSError:
                    continue
        except OSError:
            continue
    return None
