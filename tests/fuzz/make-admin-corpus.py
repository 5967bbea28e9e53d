#!/usr/bin/env python3
"""Regenerate tests/fuzz/corpus/admin/ from real kmsctl requests.

Sets up a scratch kmsd (`kmsctl init` in a temporary directory), starts it,
and puts a recording proxy on a second Unix socket in front of its admin
socket (file descriptors passed with SCM_RIGHTS are forwarded too). Every
admin command kmsctl has is then run through the proxy; each request
message kmsctl sent is written to the corpus, named by its SHA-1 as
libFuzzer names its own finds. Passwords and passphrases used here are
throwaway values. Run from the repository root:
    tests/fuzz/make-admin-corpus.py [BUILD_DIR]   (default: build)
"""
import array
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
KMSD = os.path.abspath(os.path.join(BUILD, "kmsd"))
KMSCTL = os.path.abspath(os.path.join(BUILD, "kmsctl"))
OUT = os.path.abspath("tests/fuzz/corpus/admin")
captured = []


def recv_exact(sock, n, fds):
    buf = b""
    while len(buf) < n:
        msg, anc, _, _ = sock.recvmsg(n - len(buf), socket.CMSG_SPACE(16))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(data[: len(data) - len(data) % a.itemsize])
                fds.extend(a)
        if not msg:
            raise EOFError
        buf += msg
    return buf


def recv_msg(sock, fds):
    hdr = recv_exact(sock, 8, fds)
    return hdr + recv_exact(sock, int.from_bytes(hdr[4:8], "big"), fds)


def serve(client, upstream_path):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(upstream_path)
    try:
        while True:
            fds = []
            req = recv_msg(client, fds)
            captured.append(req)
            if fds:
                up.sendmsg([req[:8]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                up.sendall(req[8:])
                for fd in fds:
                    os.close(fd)
            else:
                up.sendall(req)
            client.sendall(recv_msg(up, []))
    except (EOFError, OSError):
        pass
    finally:
        up.close()
        client.close()


def proxy(listener, upstream_path):
    while True:
        try:
            c, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(c, upstream_path), daemon=True).start()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    d = tempfile.mkdtemp(prefix="kmsd-admin-corpus.")
    try:
        subprocess.run([KMSCTL, "init", "--dir", d], check=True, capture_output=True)
        conf = open(os.path.join(d, "kmsd.yaml")).read()
        conf = conf.replace('"[::]:5696"', '"127.0.0.1:%d"' % free_port())
        open(os.path.join(d, "kmsd.yaml"), "w").write(conf)
        open(os.path.join(d, "ctl.yaml"), "w").write(conf.replace("socket: admin.sock", "socket: proxy.sock"))
        kmsd = subprocess.Popen([KMSD, "-c", os.path.join(d, "kmsd.yaml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(os.path.join(d, "admin.sock")):
                break
            time.sleep(0.1)
        lis = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lis.bind(os.path.join(d, "proxy.sock"))
        lis.listen(4)
        threading.Thread(target=proxy, args=(lis, os.path.join(d, "admin.sock")), daemon=True).start()
        pw = os.path.join(d, "pw")
        open(pw, "w").write("correct horse battery staple\n")
        keyf = os.path.join(d, "bk.key")
        open(keyf, "w").write("11" * 32 + "\n")
        subprocess.run([KMSCTL, "pki", "issue-client", "vc1", "--dir", d, "--out-dir", d],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", os.path.join(d, "csr.key"), "-subj", "/CN=vcenter-csr",
                        "-out", os.path.join(d, "vc.csr")], check=True, capture_output=True)
        ctl = [KMSCTL, "--config", os.path.join(d, "ctl.yaml")]
        cmds = [
            ["status"], ["--json", "status"],
            ["tenant", "add", "blue"], ["tenant", "list"],
            ["client", "add", "--tenant", "blue", "--cert", os.path.join(d, "vc1.crt")],
            ["client", "add", "--tenant", "blue", "--csr", os.path.join(d, "vc.csr"),
             "--out", os.path.join(d, "vc.crt"), "--role", "admin"],
            ["client", "add", "--tenant", "blue", "--cn", "bycn", "--role", "client"],
            ["client", "add", "--tenant", "blue", "--user", "alice", "--password-file", pw],
            ["client", "list"], ["client", "list", "--tenant", "blue"],
            ["client", "remove", "alice", "--tenant", "blue"],
            ["audit", "status"],
            ["backup", "--out", os.path.join(d, "b1"), "--key-file", keyf],
            ["backup", "--out", os.path.join(d, "b2"), "--passphrase-file", pw],
            ["restore", "--in", os.path.join(d, "b1"), "--key-file", keyf],
            ["rotate", "status"], ["rotate", "master"], ["rotate", "store-key", "--no-wait"],
            ["tenant", "remove", "blue"], ["tenant", "remove", "blue", "--force"],
        ]
        for c in cmds:
            r = subprocess.run(ctl + c, capture_output=True, text=True, timeout=120)
            print("%-70s exit %d" % (" ".join(c)[:70], r.returncode))
        kmsd.terminate()
        kmsd.wait(timeout=30)
        os.makedirs(OUT, exist_ok=True)
        n = 0
        for m in captured:
            p = os.path.join(OUT, hashlib.sha1(m).hexdigest())
            if not os.path.exists(p):
                open(p, "wb").write(m)
                n += 1
        print("%d requests captured, %d new seeds in %s" % (len(captured), n, OUT))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
