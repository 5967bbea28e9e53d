#!/bin/bash
# bench/cluster.sh: what replication costs and how fast it is (`make bench-cluster`).
#
# One run, side by side, on loopback with the release build ($BUILD):
#   1. Create throughput: kmipbench --op create (64 connections, clients on
#      node A) against a single node (kmsctl init, no --peer-listen), a
#      3-node cluster with sync_acks 0 (async) and a fresh 3-node cluster
#      with sync_acks 1; each cluster formed with init --peer-listen /
#      cluster invite / cluster join, started from empty stores, one
#      configuration running at a time. Also the async cluster with the 64
#      connections spread over its three nodes.
#   2. Replication lag on the async cluster at fixed Create rates
#      (kmipbench --rate R on A, open loop) with a probe (Python, one
#      connection to A and one to B): every 50 ms it creates a key on A
#      and, from A's Success answer on, sends Get for it to B until B has
#      it; lag = that time (its resolution is one Get round trip, measured
#      and printed). p50/p99/max over the probes of the window (30 s: 600
#      probes, so that p99 is not decided by one or two of them). Beside
#      it a flush probe (a 4 KiB overwrite and fdatasync every 5 ms in the
#      stores' file system) says how slow the disk's flushes were, and the
#      row counts the probes over 50 ms that overlapped such a flush. Each
#      probe's time and lag stay in lag.RATE.probes, the flushes in
#      flush.RATE.txt (BENCH_KEEP=1), to match with the nodes' DEBUG lines
#      (BENCH_LOG_LEVEL=debug: each applied frame, group commit and
#      checkpoint with its timings).
#   3. Catch-up of a joining node: BENCH_CATCHUP_KEYS keys created on a
#      one-node cluster (kmipbench, 64 connections), then a node joins and
#      starts: the time until its KMIP port opens (it opens only once caught
#      up) and the snapshot apply figures from its log.
# Prints one table. It does not pin CPUs or tune the machine: generator,
# probe and every node share the machine's cores, which bounds the figures
# (docs/performance.md, "Cluster").
#
# Environment:
#   BUILD=build                 build directory with kmsd, kmsctl, kmipbench
#   BENCH_DURATION=5            seconds per throughput workload (warm-up 1 s extra)
#   BENCH_LAG_DURATION=30       seconds per lag rate
#   BENCH_LAG_RATES="1000 10000"  Create rates for the lag rows
#   BENCH_CATCHUP_KEYS=100000   keys the joining node catches up with (0: skip)
#   BENCH_KEEP=0                1: keep the temp dir (logs)
#   BENCH_PARTS="throughput lag catchup"  which of the three to run
#   BENCH_LOG_LEVEL=warn        the cluster nodes' log.level (debug: timings of every applied
#                               frame, group commit and checkpoint, in T/NODE.log)
#   BENCH_PIN=""                "CPUS_A:CPUS_REST" (taskset lists, e.g. "0:1"): node A (and the
#                               single node) on CPUS_A, the other nodes and the generator on
#                               CPUS_REST, so node A's figures do not share its cores
#   BENCH_NICE_THIRD=""         a nice level (e.g. 19) for node C of the 3-node throughput
#                               clusters: with BENCH_PIN, B and C share a core with the
#                               generator; niced, C yields it to B, which then answers
#                               sync_acks 1 as on a machine of its own (C still applies
#                               everything, behind); a model of three machines on two cores
#   BENCH_PERF=""               a directory: `perf record` the clients' node during each
#                               throughput workload into DIR/<workload>.data (BENCH_PERF_ARGS,
#                               default "-F 999 --call-graph dwarf,16384")
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
bench_build cluster.sh
DUR=${BENCH_DURATION:-5}
LAGDUR=${BENCH_LAG_DURATION:-30}
RATES=${BENCH_LAG_RATES:-"1000 10000"}
CATCHUP=${BENCH_CATCHUP_KEYS:-100000}
PARTS=${BENCH_PARTS:-"throughput lag catchup"}
PIN=${BENCH_PIN:-}
NICE3=${BENCH_NICE_THIRD:-}
PERFDIR=${BENCH_PERF:-}
LOGLVL=${BENCH_LOG_LEVEL:-warn}
part() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
# pin NAME: the taskset prefix for a node or the generator (BENCH_PIN); none without it.
pin() {
    case "$1" in sc|c) [ -z "$NICE3" ] || echo nice -n "$NICE3";; esac
    [ -n "$PIN" ] || return 0
    case "$1" in single|a|sa|ca) echo taskset -c "${PIN%%:*}";; *) echo taskset -c "${PIN#*:}";; esac
}

bench_setup kmsd-bench-cluster
# tune DIR SYNC_ACKS [LOG_LEVEL]: quiet logs, room for the connections, sync_acks.
tune() {
    $PY - "$1/kmsd.yaml" "$2" "${3:-warn}" <<'EOF'
import sys, yaml
p, acks, level = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = yaml.safe_load(open(p))
c.setdefault("log", {})["level"] = level
c.setdefault("limits", {})["max_connections"] = 1024
if "replication" in c:
    c["replication"]["sync_acks"] = acks
yaml.safe_dump(c, open(p, "w"))
EOF
}
# node NAME: set by setup; PORT_<name>, PID_<name>
declare -A KPORT KPID
start() { # name
    # shellcheck disable=SC2046
    $(pin "$1") "$BUILD/kmsd" -c "$T/$1/kmsd.yaml" >>"$T/$1.log" 2>&1 &
    KPID[$1]=$!
    PIDS+=("${KPID[$1]}")
    wait_port "${KPORT[$1]}" "${KPID[$1]}" 600 || { echo "kmsd $1 did not start:"; tail -20 "$T/$1.log"; exit 1; }
}
stop() { kill "${KPID[$1]}" 2>/dev/null; wait "${KPID[$1]}" 2>/dev/null; }
init() { # name [peer]
    KPORT[$1]=$(free_port)
    local extra=()
    [ "${2:-}" = peer ] && extra=(--peer-listen "127.0.0.1:$(free_port)" --node-id "$1")
    "$BUILD/kmsctl" init --dir "$T/$1" --listen "127.0.0.1:${KPORT[$1]}" "${extra[@]}" \
        >"$T/$1.setup.log" 2>&1 || { cat "$T/$1.setup.log"; exit 1; }
}
join() { # name first acks
    KPORT[$1]=$(free_port)
    local tok
    tok=$("$BUILD/kmsctl" --config "$T/$2/kmsd.yaml" cluster invite | tail -1)
    "$BUILD/kmsctl" cluster join "$tok" --dir "$T/$1" --listen "127.0.0.1:${KPORT[$1]}" \
        --peer-listen "127.0.0.1:$(free_port)" --node-id "$1" >"$T/$1.setup.log" 2>&1 ||
        { cat "$T/$1.setup.log"; exit 1; }
    tune "$T/$1" "$3" "$LOGLVL"
}
cluster3() { # prefix acks: form and start prefix-a, -b, -c
    init "$1a" peer; tune "$T/$1a" "$2" "$LOGLVL"; start "$1a"
    join "$1b" "$1a" "$2"; start "$1b"
    join "$1c" "$1a" "$2"; start "$1c"
}
client() { # name -> kmipbench client args (a joined node uses the first node's client)
    local pki="$T/$1/pki"
    [ -f "$pki/client.crt" ] || pki="$T/${1%?}a/pki"
    echo --host 127.0.0.1 --port "${KPORT[$1]}" --ca "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key"
}
JSON="$T/results.jsonl"
: >"$JSON"
# CPU seconds (user + system) of every kmsd running now.
cpu_all() {
    local p t=0
    for p in "${KPID[@]}"; do
        kill -0 "$p" 2>/dev/null && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
bench() { # label node kmipbench-args...
    local label=$1 node=$2 line c0 c1
    shift 2
    printf '  %-34s ' "$label" >&2
    local perf=""
    if [ -n "$PERFDIR" ]; then
        mkdir -p "$PERFDIR"
        # shellcheck disable=SC2086
        perf record ${BENCH_PERF_ARGS:--F 999 --call-graph dwarf,16384} -p "${KPID[$node]}" \
            -o "$PERFDIR/${label// /_}.data" >>"$T/perf.log" 2>&1 &
        perf=$!
        sleep 0.5
    fi
    c0=$(cpu_all)
    # shellcheck disable=SC2046
    line=$($(pin gen) "$KB" $(client "$node") --server-pid "${KPID[$node]}" --json "$@" 2>>"$T/kmipbench.err" | tail -1)
    c1=$(cpu_all)
    [ -z "$perf" ] || { kill -INT "$perf"; wait "$perf"; }
    [ -n "$line" ] || line='{"failed":true}'
    line=$($PY -c 'import json,sys; d=json.loads(sys.argv[2]); d["label"]=sys.argv[1]; d["all_cpu_s"]=int(sys.argv[3])/int(sys.argv[4]); print(json.dumps(d))' \
        "$label" "$line" "$((c1 - c0))" "$(getconf CLK_TCK)")
    echo "$line" | $PY -c 'import json,sys; d=json.loads(sys.stdin.read()); print("failed" if d.get("failed") else "%9.1f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %d  CPU us/req: node %.0f" % (d["requests_per_s"], d["p50_ms"], d["p99_ms"], d["errors"], d["cpu_us_per_req"]))' >&2
    echo "$line" >>"$JSON"
}
W=(--duration "$DUR" --warmup 0)
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg)${PIN:+, pinned $PIN}${NICE3:+, node C at nice $NICE3}" >&2

# 1. Create throughput, one configuration at a time.
if part throughput; then
init single; tune "$T/single" 0; start single
bench "create single node" single --op create --connections 64 "${W[@]}"
stop single
cluster3 s 1
bench "create 3 nodes sync_acks 1" sa --op create --connections 64 "${W[@]}"
for n in sa sb sc; do stop "$n"; done
cluster3 "" 0
bench "create 3 nodes async" a --op create --connections 64 "${W[@]}"
# The same cluster, clients spread over the three nodes (one kmipbench each).
printf '  %-34s ' "create 3 nodes async, spread" >&2
SPREAD=()
for n in a b c; do
    # shellcheck disable=SC2046
    $(pin gen) "$KB" $(client "$n") --json --op create --connections 22 "${W[@]}" >"$T/spread.$n.json" 2>>"$T/kmipbench.err" &
    SPREAD+=($!)
done
wait "${SPREAD[@]}"
$PY - "$T" "$JSON" <<'EOF' >&2
import json, sys
t, out = sys.argv[1], sys.argv[2]
rs = [json.loads(open("%s/spread.%s.json" % (t, n)).read().splitlines()[-1]) for n in "abc"]
d = {"label": "create 3 nodes async, spread", "requests_per_s": sum(r["requests_per_s"] for r in rs),
     "p50_ms": max(r["p50_ms"] for r in rs), "p99_ms": max(r["p99_ms"] for r in rs),
     "errors": sum(r["errors"] for r in rs)}
open(out, "a").write(json.dumps(d) + "\n")
print("%9.1f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %d (sum of 3 x 22 connections)" % (
    d["requests_per_s"], d["p50_ms"], d["p99_ms"], d["errors"]))
EOF
fi

# 2. Replication lag A -> B at fixed rates, on the async cluster.
if part lag; then
part throughput || cluster3 "" 0
LAGPY="$T/lag.py"
cat >"$LAGPY" <<'EOF'
import json, os, ssl, socket, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "interop"))
import kmsd_harness as H
pki_a, port_a, port_b, dur = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
trace = open(sys.argv[6], "w") if len(sys.argv) > 6 else None
def conn(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki_a + "/ca.crt")
    ctx.load_cert_chain(pki_a + "/client.crt", pki_a + "/client.key")
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
T_OBJ, T_TA, T_ATTR, T_AN, T_AV = 0x420057, 0x420091, 0x420008, 0x42000A, 0x42000B
def attr(n, t, v):
    return H.item(T_ATTR, H.STRUCT, [H.item(T_AN, H.TEXT, n), H.item(T_AV, t, v)])
create = H.request(H.batch_item(0x01, [H.item(T_OBJ, H.ENUM, 2), H.item(T_TA, H.STRUCT, [
    attr("Cryptographic Algorithm", H.ENUM, 3), attr("Cryptographic Length", H.INT, 256),
    attr("Cryptographic Usage Mask", H.INT, 12)])]))
def get(uid):
    return H.request(H.batch_item(0x0A, [H.item("UniqueIdentifier", H.TEXT, uid)]))
a, b = conn(port_a), conn(port_b)
def call(s, req):
    s.sendall(req)
    r = H.read_response(s)
    return H.statuses(r)[0], H.find_all(H.decode(r), "UniqueIdentifier")
lags, rtts = [], []
end = time.monotonic() + dur
while time.monotonic() < end:
    t0 = time.monotonic()
    st, ids = call(a, create)
    if st != 0:
        continue
    acked = time.monotonic()
    while True:
        g0 = time.monotonic()
        st, _ = call(b, get(ids[0]))
        if st == 0:
            lags.append(time.monotonic() - acked)
            if trace:  # wall clock of A's answer, lag, key: to match with the nodes' logs
                trace.write("%.6f %.3f %s\n" % (time.time() - lags[-1], lags[-1] * 1000, ids[0]))
            break
        rtts.append(time.monotonic() - g0)
        if time.monotonic() - acked > 30:
            lags.append(float("inf"))
            break
    time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] * 1000 if v else None
print(json.dumps({"probes": len(lags), "lag_p50_ms": pct(lags, 0.5), "lag_p99_ms": pct(lags, 0.99),
                  "lag_max_ms": pct(lags, 1.0), "get_rtt_p50_ms": pct(rtts, 0.5)}))
EOF
# The disk's flush latency beside each lag window: every 5 ms a 4 KiB
# overwrite of one block and fdatasync (what a commit's WAL sync needs),
# in the directory the stores use. A flush that stalls there stalls every
# node's commits at the same moment (the nodes share the disk).
FLUSHPY="$T/flush.py"
cat >"$FLUSHPY" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(fd, b"\0" * 4096, 0)
os.fsync(fd)
end, out = time.monotonic() + float(sys.argv[2]), open(sys.argv[3], "w")
while time.monotonic() < end:
    t0, m0 = time.time(), time.monotonic()
    os.pwrite(fd, os.urandom(4096), 0)
    os.fdatasync(fd)
    out.write("%.6f %.3f\n" % (t0, (time.monotonic() - m0) * 1000))
    time.sleep(0.005)
os.close(fd)
os.unlink(sys.argv[1])
EOF
for rate in $RATES; do
    printf '  %-34s ' "lag at $rate Create/s" >&2
    # shellcheck disable=SC2046
    $(pin gen) "$KB" $(client a) --json --op create --connections 64 --rate "$rate" --duration $((LAGDUR + 2)) \
        --warmup 0 >"$T/lag-load.$rate.json" 2>>"$T/kmipbench.err" &
    lp=$!
    sleep 1
    $PY "$FLUSHPY" "$T/flush.dat" "$((LAGDUR + 1))" "$T/flush.$rate.txt" 2>>"$T/lag.err" &
    fp=$!
    $PY "$LAGPY" "$REPO" "$T/a/pki" "${KPORT[a]}" "${KPORT[b]}" "$LAGDUR" "$T/lag.$rate.probes" >"$T/lag.$rate.json" 2>>"$T/lag.err"
    wait "$lp" "$fp"
    $PY - "$rate" "$T/lag-load.$rate.json" "$T/lag.$rate.json" "$JSON" "$T/lag.$rate.probes" "$T/flush.$rate.txt" <<'EOF' >&2
import json, sys
rate, load, lag, out, probes, flush = sys.argv[1:7]
STALL = 50.0  # ms: a flush this slow holds every node's commits
try:
    l = json.loads(open(load).read().splitlines()[-1])
    g = json.loads(open(lag).read().splitlines()[-1])
    pr = [tuple(map(float, x.split()[:2])) for x in open(probes)]
    fl = [tuple(map(float, x.split())) for x in open(flush)]
except Exception as e:
    print("failed (%s)" % e); sys.exit(0)
d = {"label": "lag at %s Create/s" % rate, "achieved": l["requests_per_s"], "load_p99_ms": l["p99_ms"],
     "errors": l["errors"], **g}
stalls = [(t, t + ms / 1000) for t, ms in fl if ms >= STALL]
fms = sorted(ms for _, ms in fl)
slow = [(t, t + ms / 1000) for t, ms in pr if ms >= STALL]
d.update({"flush_p50_ms": fms[len(fms) // 2] if fms else None, "flush_max_ms": fms[-1] if fms else None,
          "flush_stalls": len(stalls), "probes_over_50ms": len(slow),
          "probes_over_50ms_in_stall": sum(any(a < s1 and s0 < b for s0, s1 in stalls) for a, b in slow)})
open(out, "a").write(json.dumps(d) + "\n")
print("achieved %.0f/s (p99 %.1f ms); lag p50 %.1f ms p99 %.1f ms max %.1f ms over %d probes; Get RTT %.2f ms" % (
    d["achieved"], d["load_p99_ms"], g["lag_p50_ms"], g["lag_p99_ms"], g["lag_max_ms"], g["probes"],
    g["get_rtt_p50_ms"] or 0))
print("  %-34s fdatasync p50 %.2f ms, max %.1f ms, %d over %.0f ms; lag probes over %.0f ms: %d, %d of them during such a flush" % (
    "", d["flush_p50_ms"] or 0, d["flush_max_ms"] or 0, d["flush_stalls"], STALL, STALL,
    d["probes_over_50ms"], d["probes_over_50ms_in_stall"]))
EOF
done
for n in a b c; do stop "$n"; done
fi
if part throughput && ! part lag; then
    for n in a b c; do stop "$n"; done
fi

# 3. Catch-up of a joining node.
if part catchup && [ "$CATCHUP" -gt 0 ]; then
    init ca peer; tune "$T/ca" 0; start ca
    bench "seed $CATCHUP keys on one node" ca --op create --connections 64 --requests "$CATCHUP" --warmup 0
    join cb ca 0
    tune "$T/cb" 0 info # its "snapshot ... applied" line
    cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
    ca0=$(cpu "${KPID[ca]}")
    t0=$(date +%s.%N)
    start cb
    t1=$(date +%s.%N)
    # CPU of the sender and of the joining node up to the open port: what
    # the catch-up costs, apart from how much of the shared cores it got.
    ccpu=$(( $(cpu "${KPID[ca]}") - ca0 )) jcpu=$(cpu "${KPID[cb]}")
    $PY - "$T/cb.log" "$t0" "$t1" "$CATCHUP" "$JSON" "$ccpu" "$jcpu" "$(getconf CLK_TCK)" <<'EOF' >&2
import json, re, sys
log, t0, t1, keys, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tck = int(sys.argv[8])
m = re.search(r"snapshot from \w+ applied: (\d+) entities up to seq \d+ in ([\d.]+) s", open(log).read())
d = {"label": "catch-up", "keys": keys, "ready_s": t1 - t0,
     "sender_cpu_us": int(sys.argv[6]) * 1e6 / tck / keys, "joiner_cpu_us": int(sys.argv[7]) * 1e6 / tck / keys}
if m:
    d["entities"], d["snapshot_s"] = int(m.group(1)), float(m.group(2))
open(out, "a").write(json.dumps(d) + "\n")
print("  %-34s ready %.1f s after start (%.0f keys/s)%s; CPU per object: sender %.0f us, joining node %.0f us" % (
      "catch-up of a joining node", d["ready_s"], keys / d["ready_s"],
      "; snapshot %d entities in %.1f s (%.0f/s)" % (
          d["entities"], d["snapshot_s"], d["entities"] / d["snapshot_s"]) if m else "",
      d["sender_cpu_us"], d["joiner_cpu_us"]))
EOF
    stop cb; stop ca
fi

$PY - "$JSON" <<'EOF'
import json, sys
rows = {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    rows[d["label"]] = d
print()
print("| workload | result | vs single node |")
print("|---|---|---:|")
single = rows.get("create single node", {}).get("requests_per_s")
for k in ("create single node", "create 3 nodes async", "create 3 nodes sync_acks 1",
          "create 3 nodes async, spread"):
    d = rows.get(k)
    if not d or d.get("failed"):
        print("| %s | failed | |" % k); continue
    ratio = "%.0f %%" % (100 * d["requests_per_s"] / single) if single else "-"
    cpu = ""
    if d.get("cpu_us_per_req"):
        cpu = "; CPU per Create: the node clients use %.0f us, all nodes %.0f us" % (
            d["cpu_us_per_req"], d["all_cpu_s"] * 1e6 / max(1, d["requests_per_s"] * d.get("elapsed_s", 0) or 1))
    print("| %s | %.0f Create/s, p50 %.2f ms, p99 %.2f ms, errors %d%s | %s |" % (
        k, d["requests_per_s"], d["p50_ms"], d["p99_ms"], d["errors"], cpu, ratio))
for k, d in rows.items():
    if k.startswith("lag at"):
        print("| %s (A -> B) | achieved %.0f/s; lag p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d probes, Get RTT %.2f ms); "
              "disk flush (fdatasync) max %.0f ms, %d over 50 ms; %d probes over 50 ms, %d during such a flush | |" % (
            k, d["achieved"], d["lag_p50_ms"], d["lag_p99_ms"], d["lag_max_ms"], d["probes"], d["get_rtt_p50_ms"] or 0,
            d.get("flush_max_ms") or 0, d.get("flush_stalls", 0), d.get("probes_over_50ms", 0),
            d.get("probes_over_50ms_in_stall", 0)))
c = rows.get("catch-up")
if c:
    s = rows.get("seed %d keys on one node" % c["keys"], {})
    extra = "; snapshot %d entities applied in %.1f s = %.0f objects/s" % (
        c["entities"], c["snapshot_s"], c["entities"] / c["snapshot_s"]) if "entities" in c else ""
    print("| catch-up of a joining node, %d keys | ready %.1f s after start = %.0f keys/s%s; CPU per object: sender %.0f us, joining node %.0f us (seeded at %.0f Create/s) | |" % (
        c["keys"], c["ready_s"], c["keys"] / c["ready_s"], extra, c.get("sender_cpu_us", 0),
        c.get("joiner_cpu_us", 0), s.get("requests_per_s", 0)))
EOF
