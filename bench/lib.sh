# bench/lib.sh: shell helpers shared by bench/compare.sh and bench/cluster.sh
# (sourced from the repository root, not run). bench_build sets REPO, BUILD
# (absolute), KB and PY and checks the binaries; bench_setup sets T (a temp
# dir), PIDS and PGROUPS (what cleanup ends at exit); free_port and
# wait_port. It starts nothing itself.
bench_build() { # script-name
    REPO=$PWD
    BUILD=${BUILD:-build}
    case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
    PY=/usr/bin/python3
    KB="$BUILD/kmipbench"
    local b
    for b in kmsd kmsctl kmipbench; do
        [ -x "$BUILD/$b" ] || { echo "$1: $BUILD/$b missing (make BUILD=${BUILD#$REPO/})" >&2; exit 1; }
    done
}
bench_setup() { # temp-dir-prefix
    T=$(mktemp -d "/tmp/$1.XXXXXX")
    PIDS=()
    PGROUPS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    for g in "${PGROUPS[@]}"; do kill -- "-$g" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port pid seconds
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
