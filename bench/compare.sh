#!/bin/bash
# bench/compare.sh: measure kmsd and the PyKMIP server side by side (`make bench`).
#
# One run: `kmsctl init` makes a CA, server and client certificates in a temp
# dir; kmsd (non-sanitized $BUILD) and the PyKMIP server (Debian
# python3-pykmip, SQLite database in the temp dir, TLS 1.2 suite, same
# server certificate and CA) listen on free loopback ports; the same
# kmipbench workloads run against each; references are measured on the same
# machine: openssl s_server's CPU per mutual-TLS handshake (openssl s_time
# -new, same ECDSA P-256 key) and a one-commit-per-insert SQLite loop (WAL,
# synchronous=FULL) on the same disk. The cryptographic workloads (encrypt,
# sign-ecdsa, sign-rsa, mac) run against both servers too, and `openssl
# speed` gives the cost of each primitive alone on this machine, so the
# table shows kmsd's server CPU per operation next to it. Prints one table:
# workload | kmsd | PyKMIP | ratio (ratio = how many times better kmsd is).
# It does not tune the machine, pin CPUs or change server code.
#
# Environment:
#   BUILD=build               build directory with kmsd, kmsctl, kmipbench
#   BENCH_DURATION=3          seconds per workload (warm-up 1 s extra)
#   BENCH_CONNS=64            connections for the persistent workloads
#   BENCH_IDLE=10000          idle TLS connections held against kmsd (0: skip)
#   BENCH_IDLE_PYKMIP=0       idle connections against PyKMIP (thread per conn)
#   BENCH_PYKMIP=1            0: skip the PyKMIP column
#   BENCH_MILLION=0           N>0: opt-in seeding of N keys through kmsd, each
#                             with a unique Name, then Locate by Name latency
#                             and restart time
#   BENCH_KEEP=0              1: keep the temp dir
#   BENCH_JSON_OUT=FILE       also write every kmipbench JSON line to FILE
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
bench_build compare.sh
DUR=${BENCH_DURATION:-3}
CONNS=${BENCH_CONNS:-64}
IDLE=${BENCH_IDLE:-10000}
IDLE_PY=${BENCH_IDLE_PYKMIP:-0}
DO_PY=${BENCH_PYKMIP:-1}
MILLION=${BENCH_MILLION:-0}

# 10 000 idle connections need descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 256)) ]; then
    echo "compare.sh: open-file limit $(ulimit -n) < idle connections $IDLE; lowering" >&2
    IDLE=$(( $(ulimit -n) - 256 ))
fi

bench_setup kmsd-bench
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

KPORT=$(free_port)
"$BUILD/kmsctl" init --dir "$T/kmsd" --listen "127.0.0.1:$KPORT" >"$T/init.log" 2>&1 ||
    { cat "$T/init.log"; exit 1; }
PKI="$T/kmsd/pki"
CLIENT=(--ca "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key")
# quiet logs; room for the idle connections
$PY - "$T/kmsd/kmsd.yaml" "$IDLE" <<'EOF'
import sys, yaml
p, idle = sys.argv[1], int(sys.argv[2])
c = yaml.safe_load(open(p))
c.setdefault("log", {})["level"] = "warn"
c.setdefault("limits", {})["max_connections"] = max(10000, idle + 100)
c["limits"]["idle_timeout"] = "600s"
yaml.safe_dump(c, open(p, "w"))
EOF

start_kmsd() {
    "$BUILD/kmsd" -c "$T/kmsd/kmsd.yaml" >>"$T/kmsd.log" 2>&1 &
    KPID=$!
    PIDS+=("$KPID")
    wait_port "$KPORT" "$KPID" 20 || { echo "kmsd did not start:"; tail -20 "$T/kmsd.log"; exit 1; }
}
start_kmsd

PPORT=$(free_port)
PPID_=
if [ "$DO_PY" = 1 ]; then
    mkdir -p "$T/pykmip/policies"
    cat >"$T/pykmip/server.conf" <<EOF
[server]
hostname=127.0.0.1
port=$PPORT
certificate_path=$PKI/server.crt
key_path=$PKI/server.key
ca_path=$PKI/ca.crt
auth_suite=TLS1.2
policy_path=$T/pykmip/policies
enable_tls_client_auth=True
logging_level=WARNING
database_path=$T/pykmip/pykmip.db
EOF
    # setsid: a process group of its own, so cleanup also ends the policy
    # monitor and manager processes PyKMIP forks (they outlive their parent).
    setsid $PY -W ignore -c 'from kmip.services.server import server; server.main()' \
        -f "$T/pykmip/server.conf" -l "$T/pykmip/server.log" >"$T/pykmip.out" 2>&1 &
    PPID_=$!
    PIDS+=("$PPID_")
    PGROUPS+=("$PPID_")
    if ! wait_port "$PPORT" "$PPID_" 30; then
        echo "compare.sh: PyKMIP server did not start; PyKMIP column skipped" >&2
        tail -5 "$T/pykmip.out" >&2
        DO_PY=0
    fi
fi

JSON="$T/results.jsonl"
: >"$JSON"
# run NAME SERVER(kmsd|pykmip) kmipbench-args...
run() {
    local name=$1 who=$2 port pid line
    shift 2
    if [ "$who" = kmsd ]; then port=$KPORT pid=$KPID; else port=$PPORT pid=$PPID_; fi
    printf '  %-28s %-7s ' "$name" "$who" >&2
    line=$(nice -n 0 "$KB" --host 127.0.0.1 --port "$port" "${CLIENT[@]}" --server-pid "$pid" \
        --json "$@" 2>>"$T/kmipbench.err" | tail -1)
    [ -n "$line" ] || line='{"failed":true}'
    echo "$line" | $PY -c 'import json,sys; d=json.loads(sys.stdin.read()); print("failed" if d.get("failed") else "%10.1f req/s  p99 %8.3f ms  cpu %s us/req  errors %d" % (d["requests_per_s"], d["p99_ms"], d["cpu_us_per_req"], d["errors"]))' >&2
    $PY -c 'import json,sys; d=json.loads(sys.argv[3]); d["name"]=sys.argv[1]; d["server"]=sys.argv[2]; print(json.dumps(d))' \
        "$name" "$who" "$line" >>"$JSON"
}
both() { # name args...
    local name=$1
    shift
    run "$name" kmsd "$@"
    [ "$DO_PY" = 1 ] && run "$name" pykmip "$@"
}

echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg), $(openssl version | cut -d' ' -f1-2)" >&2
echo "kmsd $KPORT (pid $KPID), PyKMIP $([ "$DO_PY" = 1 ] && echo "$PPORT (pid $PPID_)" || echo skipped); $DUR s per workload" >&2
W=(--duration "$DUR" --warmup 1)
# Idle connections first, on a server that has served nothing yet: the
# figure is what connections cost, not what the caches (objects, pages,
# TLS sessions) filled by the workloads below hold; RSS before is printed
# too, and the server's RSS after all workloads is a row of its own.
RSS0=$(awk '/^VmRSS/{print $2}' "/proc/$KPID/status")
[ "$IDLE" -gt 0 ] && run idle kmsd --idle "$IDLE" --duration $((DUR > 5 ? DUR : 5))
both get          --op get    --connections "$CONNS" "${W[@]}"
both create       --op create --connections "$CONNS" "${W[@]}"
both vcenter      --op vcenter --connections "$CONNS" "${W[@]}"
both mix80/20     --op mix:get=80,create=20 --connections "$CONNS" "${W[@]}"
both get-1conn    --op get --connections 1 "${W[@]}"
# PyKMIP's suite is TLS 1.2 only: the TLS 1.2 rows compare both servers.
both newconn-tls12        --op get --new-conn --tls 1.2 --connections 8 "${W[@]}"
both newconn-tls12-resume --op get --new-conn --resume --tls 1.2 --connections 8 "${W[@]}"
run  newconn-tls13        kmsd --op get --new-conn --tls 1.3 --connections 8 "${W[@]}"
run  newconn-tls13-resume kmsd --op get --new-conn --resume --tls 1.3 --connections 8 "${W[@]}"

# Get p99 at half of each server's measured peak (open loop).
for who in kmsd pykmip; do
    [ "$who" = pykmip ] && [ "$DO_PY" != 1 ] && continue
    peak=$($PY -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d.get("name")=="get" and d.get("server")==sys.argv[2]: print(int(d.get("requests_per_s",0)))' "$JSON" "$who")
    [ -n "$peak" ] && [ "$peak" -gt 2 ] && run get-half-peak-rate "$who" --op get --connections "$CONNS" \
        --rate $((peak / 2)) "${W[@]}"
done

# The cryptographic services (KMIP 1.2 Encrypt, Sign, MAC). PyKMIP's server
# signs with RSA only: its sign-ecdsa row is its refusal (Invalid Field).
both encrypt      --op encrypt    --connections "$CONNS" "${W[@]}"
both sign-ecdsa   --op sign-ecdsa --connections "$CONNS" "${W[@]}"
both sign-rsa     --op sign-rsa   --connections "$CONNS" "${W[@]}"
both mac          --op mac        --connections "$CONNS" "${W[@]}"
# The primitives alone (openssl speed, one core): us per operation.
SPEED="$T/speed.txt"
{ openssl speed -seconds "$DUR" -mr ecdsap256 rsa2048 2>/dev/null
  openssl speed -seconds "$DUR" -mr -bytes 4096 -evp aes-256-gcm 2>/dev/null
  openssl speed -seconds "$DUR" -mr -bytes 64 -hmac sha256 2>/dev/null; } | grep '^+F' >"$SPEED"

# Locate last: PyKMIP answers it by scanning every object in Python, and the
# Locates still running when the window closes would slow the next workload.
both locate       --op locate --connections "$CONNS" "${W[@]}"

[ "$DO_PY" = 1 ] && [ "$IDLE_PY" -gt 0 ] && run idle pykmip --idle "$IDLE_PY" --duration 5
RSS1=$(awk '/^VmRSS/{print $2}' "/proc/$KPID/status")

# Where a handshake's CPU goes, in process (OpenSSL alone, no kernel, no KMIP).
"$KB" --tls-costs --ca "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" \
    --server-cert "$PKI/server.crt" --server-key "$PKI/server.key" --json >"$T/tlscost.json" 2>>"$T/kmipbench.err"

# Reference 1: openssl s_server CPU per mutual-TLS 1.3 handshake, same key type.
SPORT=$(free_port)
openssl s_server -accept "$SPORT" -cert "$PKI/server.crt" -key "$PKI/server.key" \
    -CAfile "$PKI/ca.crt" -Verify 1 -tls1_3 -rev -quiet </dev/null >"$T/s_server.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")
SSERVER=""
if wait_port "$SPORT" "$SPID" 10; then
    c0=$(cpu_ticks "$SPID")
    out=$(openssl s_time -connect "127.0.0.1:$SPORT" -new -tls1_3 -time "$DUR" -cert "$PKI/client.crt" \
        -key "$PKI/client.key" -CAfile "$PKI/ca.crt" 2>/dev/null | grep 'real seconds')
    c1=$(cpu_ticks "$SPID")
    n=$(echo "$out" | awk '{print $1}')
    secs=$(echo "$out" | awk '{print $4}')
    hz=$(getconf CLK_TCK)
    [ -n "$n" ] && [ "$n" -gt 0 ] && SSERVER=$($PY -c "print('%.1f %.1f' % (($c1-$c0)/$hz*1e6/$n, $n/$secs))")
fi
kill "$SPID" 2>/dev/null

# Reference 2: one commit per insert, same disk as kmsd's database.
FLOOR=$("$KB" --sqlite-floor "$T/kmsd/floor.db" --requests "${BENCH_FLOOR_INSERTS:-1000}" --json |
    $PY -c 'import json,sys; print(json.loads(sys.stdin.read())["sqlite_commits_per_s"])')
rm -f "$T/kmsd/floor.db"*

# Opt-in: a million keys.
MILLION_OUT=""
if [ "$MILLION" -gt 0 ]; then
    echo "seeding $MILLION keys through kmsd ($CONNS connections)..." >&2
    "$KB" --host 127.0.0.1 --port "$KPORT" "${CLIENT[@]}" --op create --named --connections "$CONNS" \
        --requests "$MILLION" --warmup 0 --json >"$T/seed.json" 2>>"$T/kmipbench.err"
    $PY -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print("seeded: %d Create in %.0f s (%.0f/s), %d errors, p99 %.1f ms" % (d["requests"], d["elapsed_s"], d["requests_per_s"], d["errors"], d["p99_ms"]))' "$T/seed.json" >&2 || echo "seeding failed" >&2
    du -h "$T/kmsd/kms.db" >&2
    run "locate@$MILLION" kmsd --op locate --connections 1 --keys 100 "${W[@]}"
    kill "$KPID"; wait "$KPID" 2>/dev/null
    t0=$(date +%s.%N)
    start_kmsd
    t1=$(date +%s.%N)
    MILLION_OUT=$($PY -c "print('%.3f' % ($t1 - $t0))")
fi

$PY - "$JSON" "${SSERVER:-}" "$FLOOR" "$MILLION" "$MILLION_OUT" "$RSS0" "$RSS1" "$T/tlscost.json" "$SPEED" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sserver, floor, million, restart = sys.argv[2], float(sys.argv[3] or 0), int(sys.argv[4]), sys.argv[5]
rss0, rss1 = int(sys.argv[6] or 0), int(sys.argv[7] or 0)
try:
    tlscost = json.loads(open(sys.argv[8]).read().splitlines()[-1])["tls_costs_us"]
except Exception:
    tlscost = None
res = {}
for r in rows:
    res[(r["name"], r["server"])] = r
def fmt(v, unit):
    if v == 0.0 and unit == "":
        return "0 (none finished in the window)"
    return "-" if v is None else ("%.1f %s" % (v, unit) if v >= 10 else "%.3f %s" % (v, unit))
print()
print("| workload | metric | kmsd | PyKMIP | ratio |")
print("|---|---|---:|---:|---:|")
names = []
for r in rows:
    if r["name"] not in names:
        names.append(r["name"])
for n in names:
    k, p = res.get((n, "kmsd")), res.get((n, "pykmip"))
    if k and k.get("failed"):
        print("| %s | | failed | | |" % n); continue
    if n.startswith("idle"):
        one = lambda x: "%d of %d / %.1f MB" % (x["idle_established"], x["idle_target"], x["server_rss_kb"] / 1024)
        print("| idle TLS connections | established / server RSS | %s | %s | |" % (one(k) if k else "-", one(p) if p else "-"))
        if k and rss0 and k.get("idle_established"):
            print("| idle TLS connections | RSS before / per connection | %.1f MB / %.1f kB | | |" % (
                rss0 / 1024, (k["server_rss_kb"] - rss0) / k["idle_established"]))
        continue
    metrics = [("req/s", "requests_per_s", True, ""), ("p99 ms", "p99_ms", False, "ms"),
               ("server CPU us/req", "cpu_us_per_req", False, "us")]
    if n == "vcenter":
        metrics.insert(1, ("sequences/s", "operations_per_s", True, ""))
    if n.startswith("get-half"):
        metrics.insert(1, ("p50 ms", "p50_ms", False, "ms"))
    for label, key, higher, unit in metrics:
        kv = k.get(key) if k else None
        pv = p.get(key) if p and not p.get("failed") else None
        ratio = "-"
        if p and not p.get("failed") and p.get("operations") == 0:
            pv = None  # nothing finished inside the window: no number to show
            if key == "requests_per_s":
                pv = 0.0
        if kv and pv:
            ratio = "%.1fx" % ((kv / pv) if higher else (pv / kv))
        errs = ""
        if key == "requests_per_s":
            e = [str(x["errors"]) for x in (k, p) if x and not x.get("failed")]
            if any(v != "0" for v in e):
                errs = " (errors %s)" % "/".join(e)
        print("| %s | %s%s | %s | %s | %s |" % (n, label, errs, fmt(kv, "").strip(), fmt(pv, "").strip(), ratio))
if sserver:
    cpu, rate = sserver.split()
    print("| ref: openssl s_server TLS 1.3 mTLS P-256 | server CPU us/handshake | %s | (s_time %s conn/s) | |" % (cpu, rate))
print("| ref: SQLite 1 commit/insert (WAL, FULL) | commits/s | %.1f | | |" % floor)
if rss1:
    print("| kmsd after all workloads | RSS (caches filled, no idle connections) | %.1f MB | | |" % (rss1 / 1024))
if tlscost:
    print("| ref: OpenSSL in process, server side | TLS 1.3 mTLS / no client cert / resumed, us | %.0f / %.0f / %.0f | | |" % (
        tlscost["handshake_mtls"], tlscost["handshake_no_client_cert"], tlscost["handshake_resumed"]))
    print("| ref: OpenSSL pieces | parse client cert / verify chain / ECDSA sign / verify / X25519, us | %.0f / %.0f / %.0f / %.0f / %.0f | | |" % (
        tlscost["parse_client_cert"], tlscost["verify_client_chain"], tlscost["ecdsa_p256_sign"],
        tlscost["ecdsa_p256_verify"], tlscost["x25519"]))
# openssl speed -mr: "+F2:n:2048:sign/s:verify/s" (RSA), "+F4:n:256:sign/s:verify/s"
# (ECDSA), "+F:n:name:bytes/s..." (ciphers, HMAC; one block size asked for).
prim = {}
try:
    for l in open(sys.argv[9]):
        f = l.strip().split(":")
        if f[0] == "+F2" and f[2] == "2048":
            prim["sign-rsa"] = 1e6 / float(f[3])
        elif f[0] == "+F4" and f[2] == "256":
            prim["sign-ecdsa"] = 1e6 / float(f[3])
        elif f[0] == "+F" and "gcm" in f[2].lower():
            prim["encrypt"] = 4096 / float(f[3]) * 1e6
        elif f[0] == "+F" and "hmac" in f[2].lower():
            prim["mac"] = 64 / float(f[3]) * 1e6
except Exception:
    pass
for n, what in [("encrypt", "AES-256-GCM 4 KiB"), ("sign-ecdsa", "ECDSA P-256 sign"),
                ("sign-rsa", "RSA-2048 sign"), ("mac", "HMAC-SHA256 64 B")]:
    k = res.get((n, "kmsd"))
    if n in prim and k and not k.get("failed"):
        over = k["cpu_us_per_req"] - prim[n]
        print("| %s | openssl speed us/op; kmsd CPU us/req; protocol overhead us (x primitive) | %.1f; %.1f; %.1f (%.2fx) | | |" % (
            what, prim[n], k["cpu_us_per_req"], over, over / prim[n] if prim[n] else 0))
c = res.get(("create", "kmsd"))
if c and floor:
    print("| create vs SQLite floor | ratio | %.1fx | | |" % (c["requests_per_s"] / floor))
if million:
    l = res.get(("locate@%d" % million, "kmsd"))
    print("| %d keys | Locate p50 / p99 ms; restart s | %s / %s; %s | | |" % (
        million, l and l["p50_ms"], l and l["p99_ms"], restart))
EOF
if [ -n "${BENCH_JSON_OUT:-}" ]; then cp "$JSON" "$BENCH_JSON_OUT"; fi
