#!/bin/bash
# bench/soak.sh: a long run of mixed operations against one kmsd, reported
# every interval (`BUILD=build bench/soak.sh`, by hand; not part of make
# test). It makes a fresh kmsd (`kmsctl init` in a temp dir, non-sanitized
# $BUILD), then runs kmipbench with --interval: each line gives the
# interval's requests/s, errors, p50/p99/max latency, kmsd's RSS, open fds
# and CPU seconds, and the load average. The workload's cost per request
# does not grow with the store: Get, Get Attributes and Locate by Name
# (indexed) of a fixed set of setup keys, and Create followed by Destroy
# (the destroyed key's metadata row stays, as KMIP keeps it, but no
# operation of the mix scans it). It does not judge the figures: whether RSS,
# fds and p99 are flat is read from the table (docs/security.md, "Measured
# by hand").
#
#   SOAK_SECONDS=1800      length of the measured run
#   SOAK_INTERVAL=30       seconds per report line
#   SOAK_CONNECTIONS=1000  persistent connections
#   SOAK_MIX=get=40,getattrs=20,locate=20,create-destroy=20
#   SOAK_KEYS=1000         setup keys read by Get / Get Attributes / Locate
#   SOAK_OUT=FILE          also copy the report to FILE
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_build soak.sh

SECS=${SOAK_SECONDS:-1800}
IVAL=${SOAK_INTERVAL:-30}
CONNS=${SOAK_CONNECTIONS:-1000}
MIX=${SOAK_MIX:-get=40,getattrs=20,locate=20,create-destroy=20}
KEYS=${SOAK_KEYS:-1000}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bench_setup kmsd-soak
KPORT=$(free_port)
"$BUILD/kmsctl" init --dir "$T/kmsd" --listen "127.0.0.1:$KPORT" >"$T/init.log" 2>&1 ||
    { cat "$T/init.log"; exit 1; }
PKI="$T/kmsd/pki"
# quiet logs; room for every connection with a margin, so that none is
# evicted as unauthenticated while the pool fills
$PY - "$T/kmsd/kmsd.yaml" "$CONNS" <<'EOF'
import sys, yaml
p, conns = sys.argv[1], int(sys.argv[2])
c = yaml.safe_load(open(p))
c.setdefault("log", {})["level"] = "warn"
c.setdefault("limits", {})["max_connections"] = conns * 3
c["limits"]["idle_timeout"] = "600s"
yaml.safe_dump(c, open(p, "w"))
EOF
"$BUILD/kmsd" -c "$T/kmsd/kmsd.yaml" >>"$T/kmsd.log" 2>&1 &
KPID=$!
PIDS+=("$KPID")
wait_port "$KPORT" "$KPID" 20 || { echo "kmsd did not start:"; tail -20 "$T/kmsd.log"; exit 1; }

OUT=${SOAK_OUT:-/dev/null}
{
    echo "soak: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "kmsd pid $KPID ($BUILD), $CONNS connections, mix:$MIX, $KEYS setup keys, ${SECS} s"
} | tee "$OUT"
rc=0
"$KB" --host 127.0.0.1 --port "$KPORT" --ca "$PKI/ca.crt" --cert "$PKI/client.crt" \
    --key "$PKI/client.key" --server-pid "$KPID" --connections "$CONNS" --keys "$KEYS" \
    --op "mix:$MIX" --duration "$SECS" --interval "$IVAL" --warmup 5 2>&1 | tee -a "$OUT" || rc=$?
{
    echo "kmsd log: $(grep -c . "$T/kmsd.log" || true) lines, $(grep -ci 'error\|fatal' "$T/kmsd.log" || true) with error/fatal"
    { grep -i 'error\|fatal' "$T/kmsd.log" || true; } | sort | uniq -c | sort -rn | head -5
    echo "store: $(du -h "$T/kmsd/kms.db" 2>/dev/null | cut -f1) database"
} | tee -a "$OUT"
exit "$rc"
